"""Thin script over lmdm_jax/bench/train_memory.py (its docstring says what
it measures and how to run it); the same as
`python3 -m lmdm_jax.bench.train_memory`."""
from lmdm_jax.bench.train_memory import main

if __name__ == "__main__":
  main()
