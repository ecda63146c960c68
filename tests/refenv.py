"""Driving the PyTorch reference environment (.ci/refenv) by subprocess.

The project never imports torch; parity tests write inputs to a directory,
run a script from tests/reference/ with the refenv's Python, and read back
a checkpoint and outputs. `.ci/run` creates the refenv
(`.ci/setup_refenv.sh`); without it these tests skip and say how to get it.
"""
from __future__ import annotations

import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REF_PYTHON = os.environ.get(
    "LMDM_REFENV_PYTHON", os.path.join(ROOT, ".ci", "refenv", "bin", "python"))

_skip_without_refenv = pytest.mark.skipif(
    not os.path.exists(REF_PYTHON),
    reason=f"PyTorch reference venv not found at {REF_PYTHON}; create it "
           f"with `bash .ci/setup_refenv.sh` (CI does)")


def needs_refenv(test):
  """Decorator: skip without the reference venv; mark `slow` (each such
  test starts a PyTorch subprocess)."""
  return pytest.mark.slow(_skip_without_refenv(test))


def run_reference(script: str, workdir: str, timeout: int = 300) -> None:
  """Runs tests/reference/<script> WORKDIR in the refenv; raises on error."""
  path = os.path.join(ROOT, "tests", "reference", script)
  env = {k: v for k, v in os.environ.items() if not k.startswith("XLA")}
  env["OMP_NUM_THREADS"] = "1"
  proc = subprocess.run([REF_PYTHON, path, workdir], capture_output=True,
                        text=True, timeout=timeout, env=env)
  if proc.returncode:
    raise RuntimeError(f"reference script {script} failed:\n{proc.stderr}")
