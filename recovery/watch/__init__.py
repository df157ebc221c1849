"""The watch: probes, metrics, schedule and notifications that run between commands."""
