"""Mutation testing of infra/ against tests/infra with cosmic-ray, on a seeded sample of the mutants.

Every mutant of the Pulumi program costs a full run of both stacks under mocks (about 10 s here), and
there are over a thousand: the whole set takes hours. This script initialises a cosmic-ray session from
infra/mutation.toml, keeps a seeded random sample of --sample mutants pending and marks the others skipped
(as cosmic-ray's own filters do), runs them, and prints the survivors. The same seed gives the same sample
for the same code, so two runs compare; `--sample 0` runs every mutant.

    .venv/bin/python scripts/mutate_infra.py --sample 60 --seed 16
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
from pathlib import Path

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import WorkerOutcome, WorkResult

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "infra" / "mutation.toml"
BIN = Path(sys.executable).parent


def _run(*command: str) -> str:
    done = subprocess.run(command, cwd=REPO, check=True, capture_output=True, text=True)
    return done.stdout


def sample(session: Path, size: int, seed: int) -> tuple[int, int]:
    """Keep `size` mutants pending (all when 0), chosen by `seed`; mark the rest skipped."""
    with use_db(str(session), WorkDB.Mode.open) as db:
        # Job ids are random; order the mutants by where and what they mutate, so a seed picks the same ones.
        by_site = {
            (m.module_path, m.operator_name, m.occurrence): item.job_id
            for item in db.pending_work_items
            for m in item.mutations[:1]
        }
        job_ids = [by_site[key] for key in sorted(by_site)]
        if size <= 0 or size >= len(job_ids):
            return len(job_ids), len(job_ids)
        keep = set(random.Random(seed).sample(job_ids, size))
        skipped = [job for job in job_ids if job not in keep]
        db.set_multiple_results(skipped, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))
        return len(job_ids), size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=60, help="mutants to run (0: all)")
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--session", type=Path, default=REPO / ".mutation" / "infra.sqlite")
    args = parser.parse_args()
    args.session.parent.mkdir(exist_ok=True)
    args.session.unlink(missing_ok=True)
    _run(str(BIN / "cosmic-ray"), "init", str(CONFIG), str(args.session))
    total, kept = sample(args.session, args.sample, args.seed)
    print(f"mutants: {total}, running {kept} (seed {args.seed})", flush=True)
    _run(str(BIN / "cosmic-ray"), "exec", str(CONFIG), str(args.session))
    report = _run(str(BIN / "cr-report"), "--show-pending", str(args.session))
    survivors = [block for block in report.split("[job-id]") if "test outcome: TestOutcome.SURVIVED" in block]
    for block in survivors:
        print("[job-id]" + block.rstrip())
    print(f"survived: {len(survivors)} of {kept} run ({total} mutants in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
