"""benchmarks/bc_step_levers.py: the HLO dot reader and a tiny run."""
import os

import jax
import jax.numpy as jnp

from conftest import ROOT
from lmdm_jax.bench import bc_step_levers


def _levers():
  return bc_step_levers


def test_dots_reads_shapes_and_flops_from_optimised_hlo():
  lev = _levers()

  def f(x, w, q, k):
    return jnp.tanh(x @ w), jnp.einsum("hqd,hkd->hqk", q, k)

  args = (jnp.ones((6, 5)), jnp.ones((5, 7)), jnp.ones((3, 4, 8)),
          jnp.ones((3, 9, 8)))
  dots = lev._dots(jax.jit(f).lower(*args).compile().as_text())
  flops = sorted(d["flops"] for d in dots)
  assert flops == sorted([2 * 6 * 7 * 5, 2 * 3 * 4 * 9 * 8])
  batched = [d for d in dots if d["lhs_batch"]]
  assert len(batched) == 1 and batched[0]["out"] == [3, 4, 9]


def test_tiny_run_profiles_the_bc_step():
  lev = _levers()
  r = lev.measure(os.path.join(ROOT, "configs", "tiny.py"),
                  {"b1": {"batch": 1, "profile": True}}, True)
  v = r["variants"]["b1"]
  assert r["matmul_peak_flops"] > 0 and v["later_step_s"] > 0
  assert 0 < v["later_step_mfu"] < 1
  p = v["profile"]
  # Two layers, each with self- and cross-attention and a SwiGLU: at least
  # qkv, out, cross q, cross out, ff in, ff out per layer.
  assert p["dot_count"] >= 2 * 6
  assert p["matmul_flops"] == sum(d["count"] * d["flops"] for d in p["dots"])
  assert p["matmul_seconds_standalone"] > 0
