"""Evaluation: musicnn in JAX, Fréchet distance, KL, drift over time.

  lmdm eval --generated GEN/ --reference REF/ --json eval.json
  from lmdm_jax.eval import tag_summary, evaluate_dirs

See docs/evaluation.md. Heavy imports (JAX, librosa) happen on first use.
"""
from __future__ import annotations


def __getattr__(name):
  if name in ("tag_summary", "evaluate_dirs", "analyse_files"):
    from lmdm_jax.eval import run
    return getattr(run, name)
  raise AttributeError(f"module 'lmdm_jax.eval' has no attribute {name!r}")
