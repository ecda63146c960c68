#!/usr/bin/env bash
# Fine-tunes on a Cloud TPU VM pod slice: the same command on every worker.
# jax.distributed.initialize() (--distributed) finds the coordinator and the
# process ids from the TPU metadata; the mesh ("data",) spans every chip of
# every host, and each host builds only its own rows of each global batch
# (process p of P: rows [p B/P, (p+1) B/P), lmdm_jax/train/loop.py).
#
#   bash launch/train_tpu_pod.sh TPU_NAME ZONE CONFIG WORKDIR [--config.x=y ...]
#
# Stage 1 from Stable Audio Open Small (the paper's recipe): set
# LMDM_PACKAGE to a directory on each worker's own disk; every worker then
# runs `lmdm fetch sao-small --out $LMDM_PACKAGE` (skipped when up to date;
# HF_TOKEN, if set here, is passed on; the repo is gated: accept its
# licence first) and trains from it with T5 captions:
#
#   HF_TOKEN=hf_... LMDM_PACKAGE=sao_small_pkg bash launch/train_tpu_pod.sh \
#       my-v4-32 us-central2-b configs/finetune.py:bc gs://bucket/run1 \
#       --config.data.dir=/mnt/data/lmdm_data
#
# (adds --config.init.params=$LMDM_PACKAGE --config.text.encoder=t5; a
# relative LMDM_PACKAGE is under ~/lmdm_jax, the workers' working
# directory; LMDM_FETCH=model names another fetchable model, LMDM_FETCH=
# uses a package already there.) WORKDIR must be visible to every worker (a gs://
# bucket for orbax, or a shared filesystem), and so must --config.data.dir
# (a copy on each worker's disk or a shared mount: every host reads the
# records its rows need). The repo is expected at ~/lmdm_jax on every
# worker (gcloud ... scp --worker=all to put it there).
# DRY_RUN=1 prints the script each worker would run instead of running it.
set -euo pipefail
tpu="${1:?tpu name}"; zone="${2:?zone}"; config="${3:?config}"
workdir="${4:?workdir}"; shift 4
package="${LMDM_PACKAGE:-}"
fetch_model="${LMDM_FETCH-sao-small}"
extras=".[data]"
train=(python3 -m lmdm_jax.cli train --distributed --no-progress
       --config "$config" --workdir "$workdir")
if [[ -n "$package" ]]; then
  extras=".[data,fetch]"
  train+=("--config.init.params=$package" "--config.text.encoder=t5")
fi
train+=("$@")
# Each worker's script, every argument quoted for the remote shell.
q() { printf '%q ' "$@"; }
remote="set -e; cd ~/lmdm_jax
python3 -m pip install -q -e $(q "$extras")'jax[tpu]'"
if [[ -n "$package" && -n "$fetch_model" ]]; then
  if [[ -n "${HF_TOKEN:-}" ]]; then
    token="$HF_TOKEN"
    if [[ -n "${DRY_RUN:-}" ]]; then
      token="***"
    fi
    remote+="
export HF_TOKEN=$(q "$token")"
  fi
  remote+="
$(q python3 -m lmdm_jax.cli fetch "$fetch_model" --out "$package")"
fi
remote+="
$(q "${train[@]}")"
if [[ -n "${DRY_RUN:-}" ]]; then
  printf '%s\n' "$remote"
  exit 0
fi
gcloud compute tpus tpu-vm ssh "$tpu" --zone "$zone" --worker=all \
  --command "$remote"
