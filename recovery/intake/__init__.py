"""Degraded-mode intake: orders taken while the core cannot write, queued, and replayed exactly once."""
