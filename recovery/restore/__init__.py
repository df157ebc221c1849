"""Restore: choose the backup (pure selection), restore beside the live data, verify, then swap."""
