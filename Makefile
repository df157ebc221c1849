# The two front-door commands: `make lab` runs the main job on the lab, `make test` runs the tests.
# Each does its own set-up (scripts/bootstrap.sh) first.
.PHONY: bootstrap lab lab-down test lint bench mutate-infra

bootstrap:
	./scripts/bootstrap.sh

lab: bootstrap
	.venv/bin/recovery lab up
	.venv/bin/recovery lab status
	.venv/bin/recovery gameday run gamedays/failed-upgrade-unhealthy.yaml --yes

lab-down:
	.venv/bin/recovery lab down

# Two workers (pytest-xdist): most tests wait on subprocesses (ansible-runner, PostgreSQL, sshd), so they
# overlap well on two cores. loadfile keeps a module on one worker (its lab is built once); collection
# order (longest modules first, tests/conftest.py) instead of xdist's reorder by test count.
test: bootstrap
	.venv/bin/python -m pytest -q --durations=15 -n 2 --dist loadfile --no-loadscope-reorder

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/ansible-lint -q playbooks

bench: bootstrap
	.venv/bin/python benchmarks/lab_up.py

# Mutation testing of the Pulumi program and policy pack (cosmic-ray, infra/mutation.toml): a seeded sample
# of MUTANTS mutants, each run against tests/infra; prints the survivors. MUTANTS=0 runs all (hours).
MUTANTS ?= 60
mutate-infra: bootstrap
	.venv/bin/python scripts/mutate_infra.py --sample $(MUTANTS) --seed 16
