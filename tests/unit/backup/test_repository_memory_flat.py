"""Writing a backup to two directory copies holds a few MiB whatever the backup's size: the writer hands
the encoded stream on as it comes (no part buffers for copies that do not upload in parts) and the codec
seals 1 MiB chunks. Measured in a fresh interpreter (peak resident size above the size before writing),
at two sizes: before, the peak was 31-35 MiB above the start, after about 7."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from recovery.backup.keys import write_keyring

# Writes a backup of N MiB (half compressible rows, half random bytes) to two directory copies and
# prints how many KiB the peak resident size rose above the size just before.
_PROBE = """
import os, sys
from datetime import date
from pathlib import Path
from recovery.memory import return_large_buffers_to_the_os
from recovery.backup.keys import Keyring
from recovery.backup.naming import next_name
from recovery.backup.repository import BackupMetadata, write_backup
from recovery.backup.manifest import SourcePosition
from recovery.backup.stores import FilesystemStore
from datetime import UTC, datetime

return_large_buffers_to_the_os()  # as the CLI does
work, mib = Path(sys.argv[1]), int(sys.argv[2])
keys = Keyring.load(work / "keyring.json")
stores = [FilesystemStore(work / f"copy-{n}-{mib}", f"copy{n}") for n in (1, 2)]
rows = (b"order 42, paid, 1234 cents; " * 40000)[: 1 << 20]
noise = os.urandom(1 << 20)
blocks = (rows if n % 2 else noise for n in range(mib))
metadata = BackupMetadata(SourcePosition(at=datetime.now(UTC)), "1", "v1", ())
name = next_name(date(2026, 12, 7), "orders", "daily", [])
def status(field):
    text = Path("/proc/self/status").read_text()
    return int(text.split(field + ":")[1].split()[0])
before = status("VmRSS")
Path("/proc/self/clear_refs").write_text("5")  # restart the peak from here
write_backup(blocks, name, metadata, stores, keys)
print(status("VmHWM") - before)
"""


def _peak_rise_kib(work: Path, mib: int) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(work), str(mib)], capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip().splitlines()[-1])


def test_a_two_copy_backup_holds_a_few_mib_at_any_size(tmp_path: Path) -> None:
    write_keyring(tmp_path / "keyring.json", {"kek-2026": os.urandom(32)}, active="kek-2026")
    small, large = _peak_rise_kib(tmp_path, 16), _peak_rise_kib(tmp_path, 128)
    assert small < 16 * 1024, f"{small} KiB above the start for 16 MiB"
    assert large < 16 * 1024, f"{large} KiB above the start for 128 MiB"
    assert large - small < 4 * 1024, f"{small} KiB for 16 MiB, {large} KiB for 128 MiB: grows with the size"
