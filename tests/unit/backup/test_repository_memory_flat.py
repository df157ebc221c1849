"""Writing a backup to two copies holds a bounded amount of memory whatever the backup's size. Measured in
a fresh interpreter (peak resident size above the size just before writing), at two sizes each.

- Two directory copies: the writer hands the encoded stream on as it comes and the codec seals 1 MiB
  chunks. Before, the peak was 31-35 MiB above the start, after about 7.
- Two S3 copies (moto's server): both copies upload the same pieces of the encoded stream (no per-copy
  buffer, no part joined or copied), in parts of 5 MiB, one in flight per copy, each part's CRC32
  computed from its pieces. At 16 and 96 MiB stored: before (8 MiB parts cut by copying, four in flight
  per copy, botocore reading every part for its checksum and its signature) 34-35 and 50-54 MiB above the
  start; after 23.6-24.0 MiB at both sizes (with two parts in flight per copy 24.6 and 30-33: a copy
  running ahead holds older parts too).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from moto_helpers import moto_server_at

from recovery.backup.keys import write_keyring

# What every probe shares: the CLI's allocator setting, the keyring, the backup's name and metadata, and
# `peak_rise(write)`: how many KiB the peak resident size rose above the size just before `write()`.
_PROBE_HEAD = """
import os, sys
from datetime import UTC, date, datetime
from pathlib import Path
from recovery.memory import return_large_buffers_to_the_os
from recovery.backup.keys import Keyring
from recovery.backup.manifest import SourcePosition
from recovery.backup.naming import next_name
from recovery.backup.repository import BackupMetadata, object_key, write_backup

return_large_buffers_to_the_os()  # as the CLI does
work, mib = Path(sys.argv[1]), int(sys.argv[2])
keys = Keyring.load(work / "keyring.json")
metadata = BackupMetadata(SourcePosition(at=datetime.now(UTC)), "1", "v1", ())
name = next_name(date(2026, 12, 7), "orders", "daily", [])

def status(field):
    text = Path("/proc/self/status").read_text()
    return int(text.split(field + ":")[1].split()[0])

def peak_rise(write):
    before = status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # restart the peak from here
    write()
    return status("VmHWM") - before
"""

# N MiB (half compressible rows, half random bytes) to two directory copies; prints the rise.
_DIRECTORIES = (
    _PROBE_HEAD
    + """
from recovery.backup.stores import FilesystemStore

stores = [FilesystemStore(work / f"copy-{n}-{mib}", f"copy{n}") for n in (1, 2)]
rows = (b"order 42, paid, 1234 cents; " * 40000)[: 1 << 20]
noise = os.urandom(1 << 20)
blocks = (rows if n % 2 else noise for n in range(mib))
print(peak_rise(lambda: write_backup(blocks, name, metadata, stores, keys)))
"""
)

# N MiB of random bytes (incompressible: N MiB stored) to two S3 copies in two regions of the moto
# server at argv[3]; prints the rise and the number of parts of the first copy.
_S3 = (
    _PROBE_HEAD
    + """
from recovery.backup.stores import S3Store
from recovery.drivers.aws import AwsDriver
from recovery.targets.model import AwsEndpoint, BackupStore

aws = AwsDriver(AwsEndpoint(endpoint_url=sys.argv[3]))
regions = ("eu-west-1", "eu-central-1")
addresses = [BackupStore(bucket=f"copy-{n}-{mib}", region=region) for n, region in enumerate(regions)]
for address in addresses:
    aws.s3(address.region).create_bucket(
        Bucket=address.bucket, CreateBucketConfiguration={"LocationConstraint": address.region}
    )
stores = [S3Store(aws, address, f"copy{n}") for n, address in enumerate(addresses)]
for store in stores:
    store.head(object_key(name))  # the clients exist before the peak is measured
blocks = (os.urandom(1 << 20) for _ in range(mib))
rise = peak_rise(lambda: write_backup(blocks, name, metadata, stores, keys))
key = "backups/" + object_key(name)
head = aws.s3(addresses[0].region).head_object(Bucket=addresses[0].bucket, Key=key)
print(rise, head["ETag"].strip('"').rpartition("-")[2])
"""
)


def _probe(script: str, work: Path, mib: int, *more: str) -> list[int]:
    done = subprocess.run(
        [sys.executable, "-c", script, str(work), str(mib), *more], capture_output=True, text=True, check=True
    )
    return [int(figure) for figure in done.stdout.strip().splitlines()[-1].split()]


def test_a_two_copy_backup_holds_a_few_mib_at_any_size(tmp_path: Path) -> None:
    write_keyring(tmp_path / "keyring.json", {"kek-2026": os.urandom(32)}, active="kek-2026")
    [small], [large] = _probe(_DIRECTORIES, tmp_path, 16), _probe(_DIRECTORIES, tmp_path, 128)
    assert small < 16 * 1024, f"{small} KiB above the start for 16 MiB"
    assert large < 16 * 1024, f"{large} KiB above the start for 128 MiB"
    assert large - small < 4 * 1024, f"{small} KiB for 16 MiB, {large} KiB for 128 MiB: grows with the size"


def test_a_two_copy_s3_backup_holds_its_parts_once_at_any_size(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    write_keyring(tmp_path / "keyring.json", {"kek-2026": os.urandom(32)}, active="kek-2026")
    with moto_server_at(free_port()) as url:
        (small, small_parts), (large, large_parts) = (_probe(_S3, tmp_path, mib, url) for mib in (16, 96))
    assert (small_parts, large_parts) == (4, 20)  # parts of a little over 5 MiB, the rest in the last
    assert small < 28 * 1024, f"{small} KiB above the start for 16 MiB"
    assert large < 28 * 1024, f"{large} KiB above the start for 96 MiB"
    assert large - small < 4 * 1024, f"{small} KiB for 16 MiB, {large} KiB for 96 MiB: grows with the size"
