"""The observers of preflight: each gathers facts (I/O) that recovery.release.preflight judges."""
