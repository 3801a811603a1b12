#!/usr/bin/env bash
# Create .venv (if needed) and install brushwork with its test extras into it.
# TORCH_SPEC picks the PyTorch build; the default is the release these project machines hold on
# local disk. Elsewhere e.g.: TORCH_SPEC="torch torchvision" bash scripts/setup.sh
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH_SPEC=${TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
if ! .venv/bin/python -c "import torch, torchvision" 2>/dev/null; then
    echo "installing PyTorch ($TORCH_SPEC) into .venv ..."
    # shellcheck disable=SC2086
    .venv/bin/python -m pip install -q $TORCH_SPEC
fi
.venv/bin/python -m pip install -q -e ".[test]"
