# The two front-door commands: `make lab` runs the main job on the lab, `make test` runs the tests.
# Each does its own set-up (scripts/bootstrap.sh) first.
.PHONY: bootstrap lab lab-down test lint bench

bootstrap:
	./scripts/bootstrap.sh

lab: bootstrap
	.venv/bin/recovery lab up
	.venv/bin/recovery lab status
	./scripts/demo.sh lab v2-unhealthy

lab-down:
	.venv/bin/recovery lab down

test: bootstrap
	.venv/bin/python -m pytest -q --durations=15

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/mypy
	.venv/bin/ansible-lint -q playbooks

bench: bootstrap
	.venv/bin/python benchmarks/lab_up.py
