"""Thin script: the benchmark is lmdm_jax/bench/jam_eval.py (its docstring says
what it measures and how to run it); `python3 -m lmdm_jax.bench.jam_eval` is
the same."""
import sys

from lmdm_jax.bench.jam_eval import main

if __name__ == "__main__":
  sys.exit(main())
