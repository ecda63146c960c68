"""Thin script over lmdm_jax/bench/bc_step_levers.py (its docstring says what it
measures and how to run it); the same as
`python3 -m lmdm_jax.bench.bc_step_levers`."""
import sys

from lmdm_jax.bench.bc_step_levers import main

if __name__ == "__main__":
  sys.exit(main())
