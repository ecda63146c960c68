#!/usr/bin/env bash
# Runs the efficiency study (`lmdm bench study`) on the machine it is started
# on — a GPU box, a TPU VM or a CPU — and writes JSON, Markdown and PNG plots
# named after the platform and host. Every file records the device kind and
# count, so results from different machines can sit side by side.
#
#   bash launch/bench_study.sh cpu|cuda|tpu [sweep-config] [--peer]
#
#   cuda  installs jax[cuda12]      (GPU box: one or more NVIDIA GPUs)
#   tpu   installs jax[tpu]         (TPU VM; for a pod slice's single host)
#   cpu   plain jax
#
# --peer also runs `lmdm bench peer` (stable-audio-tools' PyTorch DiT vs ours
# in one run): it creates the PyTorch venv (.ci/setup_refenv.sh; CPU torch, so
# on a GPU box it compares against PyTorch on the CPU — pass a CUDA torch
# interpreter with LMDM_REFENV_PYTHON to compare GPU against GPU).
#
# The default sweep is SAO-Small shape (configs/bench/study_sao_small.py):
# minutes on an accelerator, 20-30 minutes on a 2-core CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
platform="${1:-cpu}"
sweep="${2:-configs/bench/study_sao_small.py}"
peer="${3:-}"
source launch/_install.sh
install_for "$platform"
tag="$(basename "$sweep" .py)_${platform}_$(hostname)"
mkdir -p benchmarks/results
lmdm bench study --config "$sweep" --json "benchmarks/results/$tag.json" \
  --report "benchmarks/results/$tag"
echo "wrote benchmarks/results/$tag.json and benchmarks/results/$tag/"
if [ "$peer" = "--peer" ]; then
  [ -n "${LMDM_REFENV_PYTHON:-}" ] || bash .ci/setup_refenv.sh
  lmdm bench peer --config configs/sao_small.py --steps 8 \
    --json "benchmarks/results/peer_${platform}_$(hostname).json"
fi
