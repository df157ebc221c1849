"""What the lab writes: sshd config, PostgreSQL settings, pgpass, known_hosts, inventory and target."""

from __future__ import annotations

from pathlib import Path

import yaml

from recovery.lab import render
from recovery.lab.plan import plan_lab
from recovery.targets.load import load_target, write_target


def _target(tmp_path: Path):  # type: ignore[no-untyped-def]
    plan = plan_lab(tmp_path, 45000)
    return plan, render.target(
        plan,
        ssh_user="orderlab",
        pg_bin=Path("/opt/pg/bin"),
        hosted_zone_id="Z1",
        kms_key_id="arn:aws:kms:eu-central-1:1:key/k",
        intake_queue_url="http://q",
        team_topic_arn="arn:team",
        customer_topic_arn="arn:customers",
    )


def test_sshd_config_listens_on_the_site_address_without_passwords_or_ttys(tmp_path: Path) -> None:
    site = plan_lab(tmp_path, 45000).standby
    lines = render.sshd_config(site).splitlines()
    assert "ListenAddress 127.0.0.12" in lines
    assert "Port 45022" in lines
    assert "PasswordAuthentication no" in lines
    assert "UsePAM no" in lines
    assert "PermitTTY no" in lines
    assert f"AuthorizedKeysFile {site.sshd_dir / 'authorized_keys'}" in lines


def test_postgres_settings_bind_the_site_and_enable_streaming(tmp_path: Path) -> None:
    text = render.postgres_settings(plan_lab(tmp_path, 45000).primary)
    assert "listen_addresses = '127.0.0.11'" in text
    assert "port = 45432" in text
    assert "wal_level = replica" in text
    assert "hot_standby = on" in text
    assert "cluster_name = 'primary'" in text
    hba = render.pg_hba()
    assert "host    replication     all         127.0.0.0/8     scram-sha-256" in hba
    assert "trust" not in hba


def test_pgpass_escapes_and_parses_back(tmp_path: Path) -> None:
    plan = plan_lab(tmp_path, 45000)
    passwords = {"postgres": "a:b\\c", "orders": "plain"}
    text = render.pgpass(plan, passwords)
    assert text.count("\n") == 4
    assert "127.0.0.12:45432:*:orders:plain" in text
    assert render.parse_pgpass(text) == passwords


def test_known_hosts_line_names_address_and_port(tmp_path: Path) -> None:
    site = plan_lab(tmp_path, 45000).primary
    line = render.known_hosts_line(site, "ssh-ed25519 AAAAC3Nza host-comment\n")
    assert line == "[127.0.0.11]:45022 ssh-ed25519 AAAAC3Nza"


def test_inventory_follows_the_ansible_contract(tmp_path: Path) -> None:
    plan = plan_lab(tmp_path, 45000)
    doc = render.inventory(plan, ssh_user="orderlab")
    groups = doc["all"]["children"]["app"]["children"]
    assert set(groups) == {"primary", "standby"}
    standby = groups["standby"]["hosts"]["standby-app"]
    assert standby["ansible_host"] == "127.0.0.12"
    assert standby["order_site"] == "standby"
    assert standby["order_db_host"] == "127.0.0.12"
    # The service's own passfile (its role only), never the controller's with the superuser in it.
    assert standby["order_db_passfile"] == str(plan.standby.service_pgpass) != str(plan.pgpass)
    assert str(plan.known_hosts) in standby["ansible_ssh_extra_args"]
    required = {
        "ansible_host",
        "ansible_port",
        "ansible_user",
        "ansible_ssh_private_key_file",
        "order_site",
        "order_service_base_dir",
        "order_service_listen",
        "order_service_port",
        "order_db_host",
        "order_db_port",
        "order_db_name",
        "order_db_user",
        "order_db_passfile",
    }
    assert required <= set(standby)
    assert yaml.safe_load(yaml.safe_dump(doc)) == doc


def test_target_is_valid_and_round_trips_through_yaml(tmp_path: Path) -> None:
    plan, target = _target(tmp_path)
    assert target.kind == "lab"
    assert target.keys.kind == "kms" and target.keys.region == "eu-central-1"
    assert (target.backup.local.region, target.backup.remote.region) == ("eu-central-1", "eu-west-1")
    assert target.traffic.front_door_url == "http://127.0.0.1:45000"
    assert target.aws.endpoint_url == "http://127.0.0.1:45001"
    assert target.primary.database.passfile == plan.pgpass
    write_target(target, tmp_path / "target.yaml")
    assert load_target(tmp_path / "target.yaml") == target
    assert "password" not in (tmp_path / "target.yaml").read_text().lower()


def test_scram_verifier_matches_postgresql_format_and_hides_the_password() -> None:
    verifier = render.scram_verifier("pencil", salt=b"0123456789abcdef")
    head, keys = verifier.split("$", 1)[1].split("$")
    assert verifier.startswith("SCRAM-SHA-256$4096:")
    assert head == "4096:MDEyMzQ1Njc4OWFiY2RlZg=="
    stored, server = keys.split(":")
    assert len(stored) == len(server) == 44
    assert "pencil" not in verifier
    assert render.scram_verifier("pencil", salt=b"0123456789abcdef") == verifier
    assert render.scram_verifier("pencil") != verifier  # a fresh salt each time


def test_the_standby_streams_as_the_replication_role_with_its_own_passfile(tmp_path: Path) -> None:
    plan = plan_lab(tmp_path, 45000)
    conninfo = render.standby_conninfo(plan)
    assert conninfo == (
        f"host=127.0.0.11 port=45432 user=replicator passfile={plan.standby.replication_pgpass}"
    )
    assert str(plan.pgpass) not in conninfo and "password" not in conninfo


def test_with_a_customer_topic_the_services_get_the_pending_template_as_the_toolkit_checked_it(
    tmp_path: Path,
) -> None:
    from recovery.notify.templates import PENDING_EVENT, load_templates

    plan = plan_lab(tmp_path, 45000)
    pending = load_templates().source_text(PENDING_EVENT)
    doc = render.inventory(
        plan, ssh_user="orderlab", intake_queue_url="http://q", customer_topic_arn="arn:c", pending=pending
    )
    shared = yaml.safe_load(yaml.safe_dump(doc))["all"]["children"]["app"]["vars"]
    assert shared["order_service_customer_topic_arn"] == "arn:c"
    assert shared["order_service_pending_subject"] == "We received your order ${order_id}"
    assert "${order_id}" in shared["order_service_pending_body"]
    assert "${received_at}" in shared["order_service_pending_body"]
    without_topic = render.inventory(plan, ssh_user="orderlab", intake_queue_url="http://q", pending=pending)
    assert "order_service_customer_topic_arn" not in without_topic["all"]["children"]["app"]["vars"]
