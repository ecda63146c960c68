# shellcheck shell=bash
# Sourced by launch/bench_*.sh: installs the project for a platform.
#   install_for cpu|cuda|tpu
install_for() {
  case "$1" in
    cpu)  python3 -m pip install -q -e . ;;
    cuda) python3 -m pip install -q -e . "jax[cuda12]" ;;
    tpu)  python3 -m pip install -q -e . "jax[tpu]" ;;
    *) echo "platform must be cpu, cuda or tpu, got $1" >&2; exit 2 ;;
  esac
}
