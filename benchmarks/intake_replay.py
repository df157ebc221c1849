"""The intake replay's rate: orders per second entered from the intake queue into the lab's order service.

Queues N orders (real users and products of the lab's catalog) straight into the lab's intake queue, then
times `replay_target` (what `recovery intake replay` and the runbooks' last step run): posts through the
front door, deletes, customer messages. Checks afterwards that every queued order is stored exactly once
and the queue is empty. Prints the figures and the load average; asserts nothing beyond that check.

Uses a running lab (`--target PATH` of its target.yaml) or builds its own (`--base-port`, `--lab-dir`,
torn down at the end).

Usage: .venv/bin/python benchmarks/intake_replay.py [--orders-queued N] [--rounds R] [--workers W]
                                                    [--target PATH | --base-port B --lab-dir DIR]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path

from rollback_lab import lab, lab_dir_for, load_average

from recovery.drivers import db
from recovery.intake.book import intake_queue, read_catalog, replay_target
from recovery.intake.record import IntakeItem, IntakeOrder
from recovery.intake.replay import REPLAY_WORKERS
from recovery.targets.load import load_target
from recovery.targets.model import Target


def queue_orders(target: Target, count: int, seed: int) -> list[uuid.UUID]:
    catalog = read_catalog(target)
    rng = random.Random(seed)
    users = sorted(catalog.users.values())
    products = sorted(product.product_id for product in catalog.products.values())
    queue = intake_queue(target)
    ids = []
    for _ in range(count):
        order = IntakeOrder(
            order_id=uuid.uuid4(),
            user_id=rng.choice(users),
            items=(IntakeItem(product_id=rng.choice(products), quantity=1),),
            received_at=datetime.now(UTC),
            channel="web",
        )
        queue.send(order)
        ids.append(order.order_id)
    return ids


def stored_once(target: Target, ids: list[uuid.UUID]) -> tuple[int, int]:
    """(orders stored, distinct ids among them) of the queued ids."""
    with db.connect(target.writable.database) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT id) FROM orders WHERE id = ANY(%s::uuid[])",
            ([str(i) for i in ids],),
        ).fetchone()
    assert row is not None
    return int(str(row[0])), int(str(row[1]))


def one_round(target: Target, count: int, seed: int, workers: int) -> str:
    ids = queue_orders(target, count, seed)
    started = time.monotonic()
    outcome = replay_target(target, workers=workers)
    seconds = time.monotonic() - started
    stored, distinct = stored_once(target, ids)
    waiting = intake_queue(target).status()
    if (stored, distinct) != (count, count) or outcome.stopped or outcome.set_aside:
        raise SystemExit(
            f"the replay did not enter each order once: stored {stored}, distinct {distinct} of {count}; "
            f"stopped {outcome.stopped}; set aside {len(outcome.set_aside)}"
        )
    return (
        f"{count} orders replayed ({workers} posts at once) in {seconds:.2f} s: "
        f"{outcome.replayed / seconds:.1f} orders/s (created {outcome.created}, already there "
        f"{outcome.present}; queue after: waiting "
        f"{waiting.waiting}, in flight {waiting.in_flight}); load average {load_average()}"
    )


def main_benchmark() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders-queued", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=REPLAY_WORKERS, help="orders posted at once")
    parser.add_argument("--target", type=Path, default=None, help="a running lab's target.yaml")
    parser.add_argument("--orders", type=int, default=2_000, help="orders seeded in a lab built here")
    parser.add_argument("--base-port", type=int, default=23000)
    parser.add_argument("--lab-dir", type=Path, default=None)
    args = parser.parse_args()
    print(f"load average before: {load_average()}", flush=True)
    built: AbstractContextManager[Target]
    if args.target is not None:
        built = nullcontext(load_target(args.target))
    else:
        lab_dir = lab_dir_for(args.lab_dir, "order-recovery-bench-replay-")
        built = lab(lab_dir, args.orders, args.base_port, purge=args.lab_dir is None)
    with built as target:
        for round_no in range(args.rounds):
            print(one_round(target, args.orders_queued, round_no, args.workers), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main_benchmark())
