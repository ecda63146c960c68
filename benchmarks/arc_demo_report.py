"""Thin script: the benchmark is lmdm_jax/bench/arc_demo_report.py (its docstring says
what it measures and how to run it); `python3 -m lmdm_jax.bench.arc_demo_report` is
the same."""
import sys

from lmdm_jax.bench.arc_demo_report import main

if __name__ == "__main__":
  sys.exit(main())
