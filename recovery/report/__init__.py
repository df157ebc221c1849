"""Reports of upgrade and rollback runs for pipelines: the JSON result and JUnit XML."""
