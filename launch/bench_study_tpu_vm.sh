#!/usr/bin/env bash
# Runs the efficiency study on a Cloud TPU VM from your workstation: copies
# the repository to worker 0, runs launch/bench_study.sh tpu there and copies
# the results back into benchmarks/results/.
#
#   bash launch/bench_study_tpu_vm.sh TPU_NAME ZONE [sweep-config]
set -euo pipefail
tpu="${1:?tpu name}"; zone="${2:?zone}"
sweep="${3:-configs/bench/study_sao_small.py}"
cd "$(dirname "$0")/.."
git archive --format=tar.gz -o /tmp/lmdm_jax.tar.gz HEAD
gcloud compute tpus tpu-vm scp /tmp/lmdm_jax.tar.gz "$tpu":~/ --zone "$zone" --worker=0
gcloud compute tpus tpu-vm ssh "$tpu" --zone "$zone" --worker=0 --command "
  set -e; mkdir -p ~/lmdm_jax && tar -xzf ~/lmdm_jax.tar.gz -C ~/lmdm_jax
  cd ~/lmdm_jax && bash launch/bench_study.sh tpu '$sweep'
  tar -czf ~/bench_results.tar.gz benchmarks/results"
gcloud compute tpus tpu-vm scp "$tpu":~/bench_results.tar.gz /tmp/ --zone "$zone" --worker=0
tar -xzf /tmp/bench_results.tar.gz
echo "results in benchmarks/results/"
