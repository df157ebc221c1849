"""Writing a backup to two S3 copies holds its parts once, whatever the backup's size: both copies upload
the same pieces of the encoded stream (no per-copy buffer, no part joined or copied), in parts of 5 MiB,
one in flight per copy, and each part's CRC32 is computed from its pieces. Measured in a fresh
interpreter against moto's server (peak resident size above the size just before writing), 16 and 96 MiB
stored: before (8 MiB parts cut by copying, four in flight per copy, botocore reading every part for its
checksum and its signature) 34-35 and 50-54 MiB above the start; after 23.6-24.0 MiB at both sizes (with
two parts in flight per copy 24.6 and 30-33: a copy running ahead holds older parts too)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from moto_helpers import moto_server_at

from recovery.backup.keys import write_keyring

# Writes a backup of N MiB of random bytes (incompressible: N MiB stored) to two S3 copies in two
# regions of the moto server at argv[3] and prints how many KiB the peak resident size rose above the
# size just before, and the number of parts of the local copy.
_PROBE = """
import os, sys
from datetime import UTC, date, datetime
from pathlib import Path
from recovery.memory import return_large_buffers_to_the_os
from recovery.backup.keys import Keyring
from recovery.backup.manifest import SourcePosition
from recovery.backup.naming import next_name
from recovery.backup.repository import BackupMetadata, object_key, write_backup
from recovery.backup.stores import S3Store
from recovery.drivers.aws import AwsDriver
from recovery.targets.model import AwsEndpoint, BackupStore

return_large_buffers_to_the_os()  # as the CLI does
work, mib, url = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
aws = AwsDriver(AwsEndpoint(endpoint_url=url))
regions = ("eu-west-1", "eu-central-1")
addresses = [BackupStore(bucket=f"copy-{n}-{mib}", region=region) for n, region in enumerate(regions)]
for address in addresses:
    aws.s3(address.region).create_bucket(
        Bucket=address.bucket, CreateBucketConfiguration={"LocationConstraint": address.region}
    )
stores = [S3Store(aws, address, f"copy{n}") for n, address in enumerate(addresses)]
keys = Keyring.load(work / "keyring.json")
blocks = (os.urandom(1 << 20) for _ in range(mib))
metadata = BackupMetadata(SourcePosition(at=datetime.now(UTC)), "1", "v1", ())
name = next_name(date(2026, 12, 7), "orders", "daily", [])
stores[0].head(object_key(name))  # the clients exist before the peak is measured
stores[1].head(object_key(name))
def status(field):
    text = Path("/proc/self/status").read_text()
    return int(text.split(field + ":")[1].split()[0])
before = status("VmRSS")
Path("/proc/self/clear_refs").write_text("5")  # restart the peak from here
write_backup(blocks, name, metadata, stores, keys)
rise = status("VmHWM") - before
head = aws.s3(addresses[0].region).head_object(Bucket=addresses[0].bucket, Key="backups/" + object_key(name))
print(rise, head["ETag"].strip('"').rpartition("-")[2])
"""


def _peak_rise_kib(work: Path, mib: int, url: str) -> tuple[int, int]:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(work), str(mib), url], capture_output=True, text=True, check=True
    )
    rise, parts = done.stdout.strip().splitlines()[-1].split()
    return int(rise), int(parts)


def test_a_two_copy_s3_backup_holds_its_parts_once_at_any_size(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    write_keyring(tmp_path / "keyring.json", {"kek-2026": os.urandom(32)}, active="kek-2026")
    with moto_server_at(free_port()) as url:
        (small, small_parts), (large, large_parts) = (_peak_rise_kib(tmp_path, mib, url) for mib in (16, 96))
    assert (small_parts, large_parts) == (4, 20)  # parts of a little over 5 MiB, the rest in the last
    assert small < 28 * 1024, f"{small} KiB above the start for 16 MiB"
    assert large < 28 * 1024, f"{large} KiB above the start for 96 MiB"
    assert large - small < 4 * 1024, f"{small} KiB for 16 MiB, {large} KiB for 96 MiB: grows with the size"
