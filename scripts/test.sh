#!/usr/bin/env bash
# One command for the test suite: set up .venv, then run every test (CPU only, a few minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest -q "$@"
