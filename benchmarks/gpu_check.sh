#!/usr/bin/env bash
# Device check (benchmarks/gpu_check.py): FAISS flat and IVF search on 1M vectors, MiniLM encoding
# fp32 / bf16 and 20 bi-encoder and CET training steps, each on the GPU against the CPU; writes
# benchmarks/results/gpu-check.md and .json. Meant to finish in under 8 minutes on one GPU; stopped
# at 8 minutes (GPU_CHECK_TIMEOUT seconds) otherwise. Extra arguments go to the script (--quick).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$PYTHON" -c "import faiss, torch; print('faiss GPUs:', faiss.get_num_gpus(), '| torch', torch.__version__, \
'cuda available:', torch.cuda.is_available())"
exec timeout "${GPU_CHECK_TIMEOUT:-480}" "$PYTHON" benchmarks/gpu_check.py "$@"
