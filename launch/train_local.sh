#!/usr/bin/env bash
# Fine-tunes on one machine, on all its devices (CPU cores, every GPU, or a
# single-host TPU VM): one process, mesh ("data",) over the local devices.
#
#   bash launch/train_local.sh CONFIG WORKDIR [--config.x=y ...]
#   bash launch/train_local.sh configs/finetune.py:bc /tmp/w --config.data.dir=DATA
#
# Re-running the same command resumes from the latest checkpoint in WORKDIR.
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:?config}"; workdir="${2:?workdir}"; shift 2
exec python3 -m lmdm_jax.cli train --config "$config" --workdir "$workdir" "$@"
