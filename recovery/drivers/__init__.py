"""Narrow adapters over the outside world: ansible-runner, Fabric, boto3, psycopg and the pg_* tools."""
