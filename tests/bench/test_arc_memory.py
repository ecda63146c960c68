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


def test_memory_json_has_every_field_and_layer_remat_lowers_temp(tmp_path):
  bench = _bench()
  out = tmp_path / "mem.json"
  bench.main(["--config", os.path.join(ROOT, "configs", "tiny.py"),
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
  for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1)):
    np.testing.assert_allclose(a, b, atol=1e-6, rtol=1e-6)


def test_remat_is_validated(tiny_cfg):
  with pytest.raises(ValueError, match="remat"):
    dataclasses.replace(dit_config(tiny_cfg), remat="everything")


def test_accumulation_lowers_temp_and_checks_divisibility(tmp_path):
  """Microbatching a per-device batch (lax.scan over microbatches) keeps one
  microbatch's activations live: temporaries fall with accum."""
  bench = _bench()
  temp = {}
  for accum in (1, 4):
    r = bench.run_one(os.path.join(ROOT, "configs", "tiny.py"), "bc", 8, 2, 2,
                      "float32", "none", ("discriminator",), accum)
    assert r["accum"] == accum and r["microbatch"] == 8 // accum
    temp[accum] = r["steps"]["discriminator"]["temp_size_in_bytes"]
  assert temp[4] < temp[1]
  with pytest.raises(ValueError, match="divide batch"):
    bench.build(__import__("lmdm_jax.configs", fromlist=["x"]).load_config(
        os.path.join(ROOT, "configs", "tiny.py")), "bc", 6, 2, accum=4)
