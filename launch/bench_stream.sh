#!/usr/bin/env bash
# Runs the streaming benchmark on the machine it is started on (CPU, a GPU
# box or a TPU VM) and writes JSON named after the device.
#
#   bash launch/bench_stream.sh cpu|cuda|tpu [config] [steps] [blocks]
#
# cuda installs jax[cuda12]; tpu installs jax[tpu]; cpu uses plain jax.
set -euo pipefail
cd "$(dirname "$0")/.."
platform="${1:-cpu}"
config="${2:-configs/sao_small.py}"
steps="${3:-8}"
blocks="${4:-5}"
source launch/_install.sh
install_for "$platform"
mkdir -p benchmarks/results
out="benchmarks/results/$(basename "$config" .py)_stream_${platform}_$(hostname).json"
lmdm bench stream --config "$config" --modes outpaint,ed,bc --steps "$steps" \
  --blocks "$blocks" --json "$out"
echo "wrote $out"
