"""Thin script over lmdm_jax/bench/jam_eval.py (its docstring says what it
measures and how to run it); the same as
`python3 -m lmdm_jax.bench.jam_eval`."""
import sys

from lmdm_jax.bench.jam_eval import main

if __name__ == "__main__":
  sys.exit(main())
