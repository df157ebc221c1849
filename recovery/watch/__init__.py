"""The watch: probes, metrics, the backup schedule, decisions and notifications, running all the time."""
