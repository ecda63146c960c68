#!/usr/bin/env bash
# Fine-tunes on a Cloud TPU VM pod slice: the same command on every worker.
# jax.distributed.initialize() (--distributed) finds the coordinator and the
# process ids from the TPU metadata; the mesh ("data",) spans every chip of
# every host, each host reads its own rows of each global batch.
#
#   bash launch/train_tpu_pod.sh TPU_NAME ZONE CONFIG WORKDIR [--config.x=y ...]
#
# WORKDIR must be visible to every worker (a gs:// bucket for orbax, or a
# shared filesystem), and so must --config.data.dir (copy the dataset to
# each worker's disk or use a shared mount). The repo is expected at
# ~/lmdm_jax on every worker (gcloud ... scp --worker=all to put it there).
set -euo pipefail
tpu="${1:?tpu name}"; zone="${2:?zone}"; config="${3:?config}"
workdir="${4:?workdir}"; shift 4
extra="$*"
gcloud compute tpus tpu-vm ssh "$tpu" --zone "$zone" --worker=all --command "
  set -e; cd ~/lmdm_jax
  python3 -m pip install -q -e '.[data]' 'jax[tpu]'
  python3 -m lmdm_jax.cli train --distributed --no-progress \
    --config '$config' --workdir '$workdir' $extra"
