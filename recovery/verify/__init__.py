"""Verification: proof that data (live, or a restored copy beside it) is complete and consistent.

- `fingerprint`: row counts and order-independent content hashes per table, compared against expected
  fingerprints (a backup manifest's).
- `invariants`: the business rules of the order system as named SQL checks.
- `smoke`: a business smoke test through the order service's HTTP API.
- `reports.ensure_passed`: a failed report becomes one VerificationFailed line.
"""

from recovery.backup.naming import DOMAINS
from recovery.verify.domains import ALL_TABLES, DOMAIN_TABLES, tables_for
from recovery.verify.fingerprint import (
    FingerprintReport,
    TableFingerprint,
    compare_fingerprints,
    fingerprint_tables,
    verify_fingerprints,
)
from recovery.verify.invariants import INVARIANT_NAMES, InvariantReport, decide_invariants, run_invariants
from recovery.verify.reports import CheckResult, ensure_passed, failure_line

__all__ = [
    "ALL_TABLES",
    "DOMAINS",
    "DOMAIN_TABLES",
    "INVARIANT_NAMES",
    "CheckResult",
    "FingerprintReport",
    "InvariantReport",
    "TableFingerprint",
    "compare_fingerprints",
    "decide_invariants",
    "ensure_passed",
    "failure_line",
    "fingerprint_tables",
    "run_invariants",
    "tables_for",
    "verify_fingerprints",
]
