#!/usr/bin/env bash
# A Python environment with PyTorch (CPU build from PyPI, about 4 GB with its CUDA libraries) for
# the reference benchmark in benches/pytorch/, at target/venv-torch. Not needed by the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/venv-torch
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import torch" 2>/dev/null; then
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet torch
"$venv/bin/python" -c "import torch; print('PyTorch', torch.__version__)"
