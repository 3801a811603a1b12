#!/usr/bin/env bash
# One command for newcomers: set up .venv, then train on the built-in art and write a gallery.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/brushwork demo "$@"
