"""Where the project's own files are: the checkout the package runs from (playbooks, inventories, the
order service). One home, so a move of the package is one edit."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PLAYBOOKS_DIR = REPO_ROOT / "playbooks"
INVENTORIES_DIR = REPO_ROOT / "inventories"
SERVICE_DIR = REPO_ROOT / "service"
