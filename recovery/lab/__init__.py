"""The single-machine lab: moto server, PostgreSQL primary + standby, sshd hosts, front door, seeding."""
