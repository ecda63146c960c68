"""ARC memory benchmark at tiny size, and layer rematerialisation of the DiT:
same parameters, same outputs, same gradients, less temporary memory."""
import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lmdm_jax.bench import arc_memory
from lmdm_jax.configs import dit_config
from lmdm_jax.model.dit import DiT
from lmdm_jax.model.init import init_params, randomize

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
# Independent compiles, no module fixtures: under xdist (conftest.py) the
# tests may go to either worker (the file is ~4 min of compiling on 2 cores).
XDIST_SPLIT_TESTS = True


def _bench():
  return arc_memory


def _one_layer_config(tmp_path) -> str:
  """configs/tiny.py with a 1-layer DiT, as a config file: the benchmark's
  steps compile in ~60 % of the CPU time of the 2-layer model's (measured:
  generator 55 -> 34 CPU-s for two compiles) and keep every property
  these tests check."""
  path = tmp_path / "tiny_one_layer.py"
  tiny = os.path.join(ROOT, "configs", "tiny.py")
  path.write_text(
      "from lmdm_jax.configs import load_config\n\n\n"
      "def get_config(arg='bc'):\n"
      f"  c = load_config({tiny!r} + ':' + (arg or 'bc'))\n"
      "  c.model.depth = 1\n"
      "  return c\n")
  return str(path)


def test_memory_json_has_every_field_and_layer_remat_lowers_temp(tmp_path):
  bench = _bench()
  out = tmp_path / "mem.json"
  bench.main(["--config", _one_layer_config(tmp_path),
              "--batch", "2", "--blocks", "2", "--k-max", "2",
              "--remat", "none,layer", "--steps", "generator", "--inline",
              "--json", str(out)])
  res = json.loads(out.read_text())
  for k in ("device_kind", "platform", "jax", "host_cpu", "host_cores",
            "runs"):
    assert k in res
  assert res["jax"] == jax.__version__
  temp = {}
  for run in res["runs"]:
    for k in ("batch", "blocks", "k_max", "dtype", "remat", "mode",
              "params_generator", "params_discriminator"):
      assert k in run
    a = run["steps"]["generator"]
    for k in bench.MEMORY_FIELDS + ("peak_bytes", "peak_gib", "temp_gib",
                                    "argument_gib", "output_gib",
                                    "alias_gib", "flops", "compile_s",
                                    "host_peak_rss_gib"):
      assert k in a, k
    assert a["peak_bytes"] == (
        a["argument_size_in_bytes"] + a["output_size_in_bytes"]
        + a["temp_size_in_bytes"] - a["alias_size_in_bytes"])
    # The generator's parameters and optimiser state are donated.
    assert a["alias_size_in_bytes"] > 0
    temp[run["remat"]] = a["temp_size_in_bytes"]
  assert temp["layer"] < temp["none"]


def _inputs(c, key, n=16):
  k = jax.random.split(key, 5)
  return (jax.random.normal(k[0], (2, n, c.io_channels)),
          jax.random.uniform(k[1], (2,)),
          jax.random.normal(k[2], (2, 5, c.cond_token_dim)),
          jax.random.normal(k[3], (2, c.global_cond_dim)),
          jax.random.normal(k[4], (2, n, c.input_add_dim)),
          np.ones(n, np.float32))


@pytest.mark.parametrize("remat", ["layer", "layer_dots"])
def test_remat_keeps_params_outputs_and_gradients(tiny_cfg, remat):
  c0 = dit_config(tiny_cfg)
  c1 = dataclasses.replace(c0, remat=remat)
  key = jax.random.PRNGKey(0)
  p0, p1 = init_params(c0, key, 5), init_params(c1, key, 5)
  assert (jax.tree_util.tree_structure(p0)
          == jax.tree_util.tree_structure(p1))
  for a, b in zip(jax.tree.leaves(p0), jax.tree.leaves(p1)):
    np.testing.assert_array_equal(a, b)
  params = randomize(p0, jax.random.PRNGKey(1))
  args = _inputs(c0, jax.random.PRNGKey(2))

  def value_and_grad(c):
    def loss(p):
      v = DiT(c).apply({"params": p}, *args)
      return jnp.sum(jnp.square(v)), v
    return jax.jit(jax.value_and_grad(loss, has_aux=True))(params)

  (l0, v0), g0 = value_and_grad(c0)
  (l1, v1), g1 = value_and_grad(c1)
  np.testing.assert_array_equal(v0, v1)
  np.testing.assert_array_equal(l0, l1)
  # The recomputed forward inside the backward pass is a different program
  # from the saved one: XLA may fuse and order its float32 sums differently
  # (with the tests' compile flags, tests/xla_flags.py, gradients of
  # magnitude ~100 differ by up to ~1e-5 relative, and gradients that are
  # zero up to rounding, e.g. the key norms' biases, carry noise of ~1e-8
  # of the largest). A wrong remat (a missing or stale recomputation) is
  # O(1).
  gmax = max(float(np.abs(a).max()) for a in jax.tree.leaves(g0))
  for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1)):
    atol = 1e-6 * max(1.0, float(np.abs(a).max())) + 3e-8 * gmax
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=atol)


def test_remat_is_validated(tiny_cfg):
  with pytest.raises(ValueError, match="remat"):
    dataclasses.replace(dit_config(tiny_cfg), remat="everything")


def test_accumulation_lowers_temp_and_checks_divisibility(tmp_path):
  """Microbatching a per-device batch (lax.scan over microbatches) keeps one
  microbatch's activations live: temporaries fall with accum. (The scan
  carries its own buffers, so the batch must be large enough for
  activations to dominate: at one layer, batch 32 takes 115 MB of
  temporaries as one microbatch and 83 MB as four of 8; batch 8, 60 vs
  69 MB.)"""
  bench = _bench()
  temp = {}
  for accum in (1, 4):
    r = bench.run_one(_one_layer_config(tmp_path), "bc", 32, 2, 2,
                      "float32", "none", ("discriminator",), accum)
    assert r["accum"] == accum and r["microbatch"] == 32 // accum
    temp[accum] = r["steps"]["discriminator"]["temp_size_in_bytes"]
  assert temp[4] < 0.8 * temp[1]
  with pytest.raises(ValueError, match="divide batch"):
    bench.build(__import__("lmdm_jax.configs", fromlist=["x"]).load_config(
        os.path.join(ROOT, "configs", "tiny.py")), "bc", 6, 2, accum=4)
