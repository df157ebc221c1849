"""`recovery intake add --csv`, `status` and `replay` against the real service on PostgreSQL, with
moto's SQS in process: bad rows reported by line, a second run queues nothing, replay enters each once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from target_files import one_host_site, write_target_file

from recovery.cli.main import main
from recovery.errors import ExitCode

HEADER = "order_ref,channel,user_email,sku,quantity,unit_price_cents,received_at\n"


@pytest.fixture
def shop_target(
    postgres, deploy, tmp_path: Path, intake_queue_url: str
) -> Iterator[tuple[Path, object, str]]:  # type: ignore[no-untyped-def]
    db = postgres.create_database("intake_cli")
    run = deploy("v1", db)
    assert run.migrate().returncode == 0
    postgres.execute(
        db,
        "INSERT INTO products (sku, name, price_cents, stock) VALUES"
        " ('A', 'Apple', 250, 50), ('B', 'Book', 1999, 5)",
    )
    run.start()
    assert run.wait_listening()
    assert run.call("POST", "/users", {"email": "ann@shop.example", "name": "Ann"})[0] == 201
    site = one_host_site(tmp_path, "primary", ssh_port=22, service_port=run.port, db_port=postgres.port)
    site["database"].update({"name": db, "passfile": str(postgres.passfile)})
    path = write_target_file(
        tmp_path, "shop", site, one_host_site(tmp_path, "standby", ssh_port=22, service_port=1, db_port=1)
    )
    doc = yaml.safe_load(path.read_text())
    doc["intake_queue_url"] = intake_queue_url
    doc["traffic"]["front_door_url"] = run.url
    path.write_text(yaml.safe_dump(doc))
    yield path, run, db
    run.stop()
    postgres.drop_database(db)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    code = main([*args, "--output", "json"])
    out, err = capsys.readouterr()
    return code, json.loads(out)["result"], err


def test_phone_orders_are_checked_queued_once_and_replayed_once(
    shop_target, postgres, tmp_path, capsys
) -> None:  # type: ignore[no-untyped-def]
    target, _, db = shop_target
    orders = tmp_path / "phone.csv"
    orders.write_text(
        HEADER
        + "P-1,phone,ann@shop.example,A,2,250,2026-12-06T09:00:00Z\n"
        + "P-1,phone,ann@shop.example,B,1,1999,2026-12-06T09:00:00Z\n"
        + "P-2,phone,ann@shop.example,Z,1,100,2026-12-06T09:05:00Z\n"
        + "E-7,email,ann@shop.example,A,1,250,2026-12-06T09:10:00Z\n"
    )
    code, doc, err = cli(capsys, "intake", "add", "--csv", str(orders), "--target", str(target))
    assert code == ExitCode.VERIFY_FAILED
    assert doc["queued"] == 2 and doc["problems"] == ["line 4: unknown product SKU 'Z'"]
    assert err.startswith("error[intake.rows_refused]: 1 rows of ")
    code, again, _ = cli(capsys, "intake", "add", "--csv", str(orders), "--target", str(target))
    assert again["queued"] == 0 and again["already"] == 2
    code, status, _ = cli(capsys, "intake", "status", "--target", str(target))
    assert code == ExitCode.OK and status["waiting"] == 2
    code, replayed, _ = cli(capsys, "intake", "replay", "--target", str(target))
    assert code == ExitCode.OK and replayed["created"] == 2 and replayed["stopped"] is None
    rows = postgres.query(db, "SELECT id::text FROM orders WHERE id = ANY(%s)", (doc["order_ids"],))
    assert sorted(r[0] for r in rows) == sorted(doc["order_ids"])
    assert postgres.query(db, "SELECT stock FROM products ORDER BY sku") == [(47,), (4,)]
    code, replayed, _ = cli(capsys, "intake", "replay", "--target", str(target))
    assert replayed["created"] == 0  # nothing left, nothing twice


def test_a_csv_without_its_columns_is_one_line_and_queues_nothing(shop_target, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    target, _, _ = shop_target
    broken = tmp_path / "broken.csv"
    broken.write_text("order_ref,channel\nP-1,phone\n")
    code = main(["intake", "add", "--csv", str(broken), "--target", str(target)])
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE
    assert err == (
        "error[intake.csv_columns]: broken.csv: missing column user_email; the header must name order_ref, "
        "channel, user_email, sku, quantity, unit_price_cents, received_at\n"
    )
    code = main(["intake", "status", "--target", str(target), "--output", "json"])
    assert json.loads(capsys.readouterr().out)["result"]["waiting"] == 0


def test_each_order_entered_from_a_file_is_told_received_pending_once_across_a_rerun(
    shop_target, tmp_path, capsys
) -> None:  # type: ignore[no-untyped-def]
    from recovery.drivers.aws import AwsDriver

    target, _, _ = shop_target
    aws = AwsDriver()
    sns, sqs = aws.client("sns", "us-east-1"), aws.client("sqs", "us-east-1")
    topic = sns.create_topic(Name="customers")["TopicArn"]
    inbox = sqs.create_queue(QueueName="customer-inbox")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn)
    doc = yaml.safe_load(target.read_text())
    doc["customer_topic_arn"] = topic
    target.write_text(yaml.safe_dump(doc))

    def told() -> list[str]:
        subjects = []
        while messages := sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10).get("Messages", []):
            for message in messages:
                subjects.append(json.loads(message["Body"])["Subject"])
                sqs.delete_message(QueueUrl=inbox, ReceiptHandle=message["ReceiptHandle"])
        return subjects

    orders = tmp_path / "email.csv"
    orders.write_text(
        HEADER
        + "E-1,email,ann@shop.example,A,1,250,2026-12-06T09:00:00Z\n"
        + "E-2,email,ann@shop.example,B,1,1999,2026-12-06T09:01:00Z\n"
    )
    code, first, _ = cli(capsys, "intake", "add", "--csv", str(orders), "--target", str(target))
    assert code == ExitCode.OK and first["queued"] == 2
    assert sorted(told()) == sorted(f"We received your order {order_id}" for order_id in first["order_ids"])
    code, again, _ = cli(capsys, "intake", "add", "--csv", str(orders), "--target", str(target))
    assert code == ExitCode.OK and again["already"] == 2
    assert told() == []
