"""Chaos Toolkit actions of the `recovery` extension that inject faults (python provider, module
`recovery.gameday.faults`), each with the action that takes it back, so a scenario's rollbacks leave the
target as it was and the next run starts from the same baseline.

Faults are injected here and in the game day's helper processes (the fault proxy, a second controller),
never in the runbooks: the runbooks meet them as they would in production. Every action takes the
target as a name or a target.yaml path and returns a plain document that lands in the journal.

- backup copies: `corrupt_copy` (a bit flipped in the stored object) and `remove_copy`, written as new
  object versions so `repair_copies` deletes exactly those versions (the buckets are versioned);
- the network to one copy's store: `network_fault` starts a fault proxy in front of it and writes a
  faulty target (the same target with that copy's endpoint at the proxy) for the commands that should
  meet the fault; `end_network_faults` stops the proxy and removes the faulty target;
- the backup key: `disable_backup_key` / `enable_backup_key` (KMS);
- the lock: `hold_lock` / `release_lock` (a second controller holding the target's lock);
- the product catalogue: `damage_catalogue` marks every product's name, so a restore has something to
  undo and `catalogue_intact` (a probe) sees whether it did.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any, Literal

from recovery.backup.naming import BackupName, parse_domain
from recovery.backup.repository import backup_names, object_key
from recovery.backup.stores import S3Store, stores_for
from recovery.drivers import db
from recovery.drivers.aws import AwsDriver
from recovery.errors import PreconditionFailed, UsageError
from recovery.gameday.faultproxy import ProxyMode
from recovery.gameday.helpers import helper_record, start_helper, stop_helper
from recovery.gameday.probes import CATALOGUE_MARK, last_run
from recovery.targets import load_target
from recovery.targets.load import resolve_target_path, write_target
from recovery.targets.model import BackupStore, Target

CopyLabel = Literal["local", "remote"]
INJECTED = "injected-versions.json"


def _copy_label(copy: str) -> CopyLabel:
    if copy not in ("local", "remote"):
        raise UsageError(f"copy {copy!r} is neither local nor remote")
    return "local" if copy == "local" else "remote"


def _store(target: Target, copy: CopyLabel) -> tuple[S3Store, AwsDriver]:
    driver = AwsDriver(target.aws)
    local, remote = stores_for(target, driver)
    return (local if copy == "local" else remote), driver


def _injected_path(target: Target) -> Path:
    return target.state_dir / "gamedays" / INJECTED


def _remember(target: Target, version: dict[str, str]) -> None:
    path = _injected_path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    known = json.loads(path.read_text()) if path.is_file() else []
    path.write_text(json.dumps([*known, version], indent=2) + "\n")


def _newest(store: S3Store, domain: str) -> BackupName:
    names = backup_names(store, parse_domain(domain))
    if not names:
        raise PreconditionFailed(f"no {domain} backup in the {store.label} copy to break; take one first")
    return names[-1]


def _versioned(store: S3Store, driver: AwsDriver) -> None:
    answer = driver.s3(store.region, store.endpoint_url).get_bucket_versioning(Bucket=store.bucket)
    if answer.get("Status") != "Enabled":
        raise PreconditionFailed(
            f"bucket {store.bucket} is not versioned: a game day breaks a copy only where the break can "
            "be taken back (the repair deletes the version it added)"
        )


def corrupt_copy(domain: str, copy: str = "local", target: str = "lab") -> dict[str, Any]:
    """Flip one byte in the middle of the newest `domain` backup's object in one copy (a new version)."""
    loaded = load_target(target)
    store, driver = _store(loaded, _copy_label(copy))
    _versioned(store, driver)
    name = _newest(store, domain)
    s3 = driver.s3(store.region, store.endpoint_url)
    key = store.prefix + object_key(name)
    with s3.get_object(Bucket=store.bucket, Key=key)["Body"] as body:
        data = bytearray(body.read())
    data[len(data) // 2] ^= 0x01
    version = s3.put_object(Bucket=store.bucket, Key=key, Body=bytes(data))["VersionId"]
    _remember(loaded, {"copy": store.label, "key": key, "version_id": version, "what": "corrupted"})
    return {"backup_id": name.backup_id, "copy": store.label, "corrupted_byte": len(data) // 2}


def remove_copy(domain: str, copy: str = "local", target: str = "lab") -> dict[str, Any]:
    """Delete the newest `domain` backup's object from one copy (a delete marker; the data stays)."""
    loaded = load_target(target)
    store, driver = _store(loaded, _copy_label(copy))
    _versioned(store, driver)
    name = _newest(store, domain)
    key = store.prefix + object_key(name)
    answer = driver.s3(store.region, store.endpoint_url).delete_object(Bucket=store.bucket, Key=key)
    _remember(loaded, {"copy": store.label, "key": key, "version_id": answer["VersionId"], "what": "removed"})
    return {"backup_id": name.backup_id, "copy": store.label}


def repair_copies(target: str = "lab") -> dict[str, Any]:
    """Delete every object version a game day added (corruptions, delete markers): the copies are back
    as the backup wrote them. Idempotent."""
    loaded = load_target(target)
    path = _injected_path(loaded)
    injected = json.loads(path.read_text()) if path.is_file() else []
    repaired = []
    for version in injected:
        store, driver = _store(loaded, _copy_label(version["copy"]))
        driver.s3(store.region, store.endpoint_url).delete_object(
            Bucket=store.bucket, Key=version["key"], VersionId=version["version_id"]
        )
        repaired.append(f"{version['what']} {version['key']} ({version['copy']} copy)")
    path.unlink(missing_ok=True)
    return {"repaired": repaired}


# The network to one copy's store -------------------------------------------------------------------------


def _endpoint_of(target: Target, store: BackupStore) -> tuple[str, int]:
    url = store.endpoint_url or target.aws.endpoint_url
    parts = urllib.parse.urlsplit(url or "")
    if not parts.hostname or not parts.port:
        raise PreconditionFailed(
            f"the {store.bucket} store has no endpoint with a host and port to put a fault proxy in front "
            "of (a game day's network faults need the lab or an S3-compatible endpoint)"
        )
    return parts.hostname, parts.port


def network_fault(
    faulty_target: str,
    copy: str = "remote",
    mode: str = "pass",
    delay_seconds: float = 0.0,
    count: int | None = None,
    seconds: float | None = None,
    target: str = "lab",
) -> dict[str, Any]:
    """Put a fault proxy in front of one copy's store (started once, then told the new fault) and write
    `faulty_target`: the target with that copy's endpoint at the proxy. Modes: pass (with a delay per
    chunk), reset (the next `count` connections, every one when None), blackhole (for `seconds`, for
    ever when None), refuse (the endpoint is down)."""
    if mode not in ("pass", "reset", "blackhole", "refuse"):
        raise UsageError(f"network fault mode {mode!r}; use pass, reset, blackhole or refuse")
    chosen: ProxyMode = mode  # type: ignore[assignment]
    label = _copy_label(copy)
    loaded = load_target(target)
    address = loaded.backup.local if label == "local" else loaded.backup.remote
    name = f"faultproxy-{label}"
    record = helper_record(loaded.state_dir, name)
    control = loaded.state_dir / "gamedays" / "helpers" / f"{name}.control.json"
    serial = int(json.loads(control.read_text())["serial"]) + 1 if control.is_file() else 1
    control.parent.mkdir(parents=True, exist_ok=True)
    fault = {
        "serial": serial,
        "mode": chosen,
        "delay_seconds": delay_seconds,
        "count": count,
        "seconds": seconds,
    }
    control.write_text(json.dumps(fault))
    if record is None:
        host, port = _endpoint_of(loaded, address)
        record = start_helper(
            loaded.state_dir,
            name,
            "recovery.gameday.faultproxy",
            ["--backend", f"{host}:{port}", "--control", str(control)],
        )
    proxied = address.model_copy(update={"endpoint_url": f"http://127.0.0.1:{record['port']}"})
    backup = loaded.backup.model_copy(update={label: proxied})
    write_target(loaded.model_copy(update={"backup": backup}), Path(faulty_target))
    return {"copy": label, "proxy": f"127.0.0.1:{record['port']}", "fault": fault}


def end_network_faults(faulty_target: str, target: str = "lab") -> dict[str, Any]:
    """Stop every fault proxy and remove the faulty target. Idempotent."""
    loaded = load_target(target)
    stopped = [label for label in ("local", "remote") if stop_helper(loaded.state_dir, f"faultproxy-{label}")]
    Path(faulty_target).unlink(missing_ok=True)
    return {"stopped": stopped}


# The backup key ---------------------------------------------------------------------------------------


def _backup_key(loaded: Target) -> tuple[Any, str]:
    keys = loaded.keys
    if keys.kind != "kms" or keys.kms_key_id is None or keys.region is None:
        raise PreconditionFailed(f"target {loaded.name} keeps its keys in a keyring, not in KMS")
    kms = AwsDriver(loaded.aws).kms(keys.region)
    return kms, str(kms.describe_key(KeyId=keys.kms_key_id)["KeyMetadata"]["KeyId"])


def disable_backup_key(target: str = "lab") -> dict[str, Any]:
    kms, key_id = _backup_key(load_target(target))
    kms.disable_key(KeyId=key_id)
    return {"key": key_id, "state": kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"]}


def enable_backup_key(target: str = "lab") -> dict[str, Any]:
    kms, key_id = _backup_key(load_target(target))
    kms.enable_key(KeyId=key_id)
    return {"key": key_id, "state": kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"]}


# The lock ------------------------------------------------------------------------------------------------


def hold_lock(target: str = "lab") -> dict[str, Any]:
    """A second controller takes the target's lock and keeps it until `release_lock`."""
    loaded = load_target(target)
    record = helper_record(loaded.state_dir, "lock-holder") or start_helper(
        loaded.state_dir,
        "lock-holder",
        "recovery.gameday.holdlock",
        ["--target", str(resolve_target_path(target).resolve())],
    )
    return {"holder_run": record["run_id"], "shared_lease": record["shared"]}


def release_lock(target: str = "lab") -> dict[str, Any]:
    return {"released": stop_helper(load_target(target).state_dir, "lock-holder")}


# The product catalogue ---------------------------------------------------------------------------------


def _update_products(target: str, sql: str) -> int:
    """Run one UPDATE of products with the mark as its two parameters; the rows it changed."""
    with db.connect(load_target(target).primary.database, autocommit=True) as conn:
        return int(conn.execute(sql, (CATALOGUE_MARK, CATALOGUE_MARK)).rowcount)


def damage_catalogue(target: str = "lab") -> dict[str, Any]:
    """Mark every product's name (a bad catalogue import): a restore of the products domain undoes it."""
    sql = "UPDATE products SET name = name || %s WHERE position(%s in name) = 0"
    return {"damaged_products": _update_products(target, sql)}


def repair_catalogue(target: str = "lab") -> dict[str, Any]:
    """Take the catalogue damage back (when no restore did). Idempotent."""
    sql = "UPDATE products SET name = replace(name, %s, '') WHERE position(%s in name) > 0"
    return {"repaired_products": _update_products(target, sql)}


# Steps out of order ------------------------------------------------------------------------------------


def resume_finished_run(runbook: str, target: str = "lab") -> dict[str, Any]:
    """The operator resumes the newest finished run of `runbook` (`recovery runs resume`), as a process
    activity would; the answer has the process provider's shape (status, stdout, stderr)."""
    loaded = load_target(target)
    finished = last_run(runbook, target)
    if finished is None or finished["status"] in ("running", "interrupted"):
        raise PreconditionFailed(f"no finished {runbook} run on {loaded.name} to resume; run one first")
    argv = [recovery_command(), "runs", "resume", finished["run_id"], "--yes", "--target", target]
    done = subprocess.run(
        [*argv, "--output", "json"], capture_output=True, text=True, timeout=120, check=False
    )
    return {
        "status": done.returncode,
        "stdout": done.stdout,
        "stderr": done.stderr,
        "run_id": finished["run_id"],
    }


def recovery_command() -> str:
    """The `recovery` command beside this Python (the game day puts it first on PATH too)."""
    beside = Path(sys.executable).parent / "recovery"
    return str(beside) if beside.is_file() else "recovery"
