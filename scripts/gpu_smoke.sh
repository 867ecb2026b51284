#!/usr/bin/env bash
# GPU tier smoke test: <= 8 minutes on one H100-class GPU, no network.
# On a machine without our dependencies, pure-Python wheels can be carried in .whl/ (see docs/gpu-runs.md).
set -euo pipefail
cd "$(dirname "$0")/.."
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
OUT_DIR="${OUT:-gpu_smoke_out}"
python3 scripts/gpu_smoke.py "$OUT_DIR"
python3 scripts/gpu_scale.py "$OUT_DIR"
python3 scripts/gpu_rehearsal.py "$OUT_DIR" 4096   # Qwen3-0.6B-shaped random model, 8 x 4 x 4096 tokens
python3 -m pytest -q -m gpu tests/gpu -p no:cacheprovider 2>&1 | tail -5
