"""Runbooks: named, journaled sequences of steps that the engine runs and can resume."""
