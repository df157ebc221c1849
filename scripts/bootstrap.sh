#!/usr/bin/env bash
# Prepare this machine for the lab and the tests: system packages (when root), the lab user, and the
# project's virtualenv in .venv. Safe to run again: every step checks before it acts.
set -euo pipefail
cd "$(dirname "$0")/.."

py=${PYTHON:-python3}
need_apt=()
command -v make >/dev/null 2>&1 || need_apt+=(make)
command -v "$py" >/dev/null 2>&1 || need_apt+=(python3)
# Debian's python3 makes virtualenvs only with python3-venv (ensurepip).
"$py" -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need_apt+=(openssh-client)
# The lab's database host decompresses what a point-in-time restore sends it (docs/realtime-backups.md).
command -v zstd >/dev/null 2>&1 || need_apt+=(zstd)
/usr/bin/python3 -c 'import psycopg2' >/dev/null 2>&1 || need_apt+=(python3-psycopg2)
# The order service's degraded mode sends orders to the SQS intake queue with the system interpreter's boto3.
/usr/bin/python3 -c 'import boto3' >/dev/null 2>&1 || need_apt+=(python3-boto3)
command -v start-stop-daemon >/dev/null 2>&1 || [ -x /usr/sbin/start-stop-daemon ] || need_apt+=(dpkg)
# Headless Chromium opens the game day's HTML report in the tests.
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "bootstrap: installing ${need_apt[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "bootstrap: missing system packages: ${need_apt[*]}; install them with: sudo apt-get install -y ${need_apt[*]}" >&2
    exit 9
  fi
fi
# sshd as root refuses to start without its privilege-separation directory.
if [ "$(id -u)" -eq 0 ]; then
  mkdir -p /run/sshd
  # PostgreSQL, sshd and the order service refuse to run as root: the lab runs them as this user.
  id orderlab >/dev/null 2>&1 || useradd --system --create-home --shell /bin/bash orderlab
fi

if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[dev,infra]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi
echo "bootstrap: ready (.venv)"
