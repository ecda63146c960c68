"""Conditioner registry, the number conditioner and SAO-style assembly."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lmdm_jax.conditioners import build_conditioners, registered

SPECS = [
    {"id": "seconds_start", "type": "number",
     "config": {"output_dim": 16, "min_val": 0, "max_val": 512}},
    {"id": "seconds_total", "type": "number",
     "config": {"output_dim": 16, "min_val": 0, "max_val": 256}},
]


def _setup():
  conds = build_conditioners(SPECS, ["seconds_start", "seconds_total"],
                             ["seconds_start", "seconds_total"])
  inputs = {"seconds_start": jnp.array([0.0, 5.0]),
            "seconds_total": jnp.array([10.0, 30.0])}
  return conds, inputs, conds.init(jax.random.PRNGKey(0), inputs)


def test_number_conditioner_formula_and_assembly():
  conds, inputs, params = _setup()
  cross, mask, glob = conds.apply(params, inputs)
  assert cross.shape == (2, 2, 16) and mask.shape == (2, 2) and mask.all()
  assert glob.shape == (2, 32)
  np.testing.assert_array_equal(glob[:, :16], cross[:, 0])
  np.testing.assert_array_equal(glob[:, 16:], cross[:, 1])
  # The formula by hand: normalised value x, [x, sin, cos] features, linear.
  p = params["params"]["seconds_total"]["embedder"]
  x = np.array([10.0, 30.0]) / 256
  f = 2 * np.pi * x[:, None] * np.asarray(p["embedding_0"]["weights"])[None]
  h = np.concatenate([x[:, None], np.sin(f), np.cos(f)], axis=-1)
  want = h @ np.asarray(p["embedding_1"]["kernel"]) + np.asarray(
      p["embedding_1"]["bias"])
  np.testing.assert_allclose(cross[:, 1], want, atol=1e-5)


def test_number_conditioner_clamps():
  conds, inputs, params = _setup()
  hi = conds.apply(params, {**inputs, "seconds_total": jnp.array([256., 1e4])})
  np.testing.assert_allclose(hi[0][0, 1], hi[0][1, 1], atol=1e-6)
  lo = conds.apply(params, {**inputs, "seconds_total": jnp.array([-5., 0.])})
  np.testing.assert_allclose(lo[0][0, 1], lo[0][1, 1], atol=1e-6)
  assert not np.allclose(hi[0][0, 1], lo[0][0, 1])


def test_conditioner_errors():
  assert "number" in registered()
  with pytest.raises(ValueError, match="unknown conditioner type 'txt'"):
    build_conditioners([{"id": "a", "type": "txt"}])
  with pytest.raises(ValueError, match="duplicate conditioner id"):
    build_conditioners(SPECS + SPECS[:1])
  with pytest.raises(ValueError, match="'prompt' has no conditioner"):
    build_conditioners(SPECS, ["prompt"])
  conds, inputs, params = _setup()
  with pytest.raises(ValueError,
                     match=r"missing conditioning inputs \['seconds_total'\]"):
    conds.apply(params, {"seconds_start": inputs["seconds_start"]})
  with pytest.raises(ValueError, match=r"shape \[B\]"):
    conds.apply(params, {**inputs, "seconds_total": jnp.ones((2, 1))})
  bad = build_conditioners([{"id": "s", "type": "number",
                             "config": {"output_dim": 4, "max_val": -1}}],
                           ["s"])
  with pytest.raises(ValueError, match="must exceed min_val"):
    bad.init(jax.random.PRNGKey(0), {"s": jnp.zeros(1)})


def test_t5_conditioner_type_assembles_text_then_numbers():
  from lmdm_jax.text.t5 import T5Config, T5Encoder
  tiny = dict(vocab_size=80, d_model=16, d_kv=8, d_ff=32, num_layers=1,
              num_heads=2, relative_attention_num_buckets=8,
              relative_attention_max_distance=16)
  conds = build_conditioners(
      [{"id": "prompt", "type": "t5",
        "config": dict(tiny, t5_model_name="t5-base", max_length=6)},
       SPECS[1]], ["prompt", "seconds_total"], ["seconds_total"])
  ids = np.array([[5, 6, 1, 0, 0, 0], [7, 1, 0, 0, 0, 0]], np.int32)
  inputs = {"prompt": (ids, ids > 0), "seconds_total": jnp.array([3., 4.])}
  params = conds.init(jax.random.PRNGKey(0), inputs)
  cross, mask, glob = conds.apply(params, inputs)
  assert cross.shape == (2, 7, 16) and glob.shape == (2, 16)
  np.testing.assert_array_equal(mask[:, :6], ids > 0)
  assert mask[:, 6].all()
  h = T5Encoder(T5Config(**tiny)).apply(
      {"params": params["params"]["prompt"]}, ids, ids > 0)
  np.testing.assert_allclose(cross[:, :6], h * (ids > 0)[..., None],
                             atol=1e-6)
  assert not np.any(cross[0, 3:6]) and np.any(cross[0, :3])
  with pytest.raises(ValueError, match=r"expects \(ids"):
    conds.apply(params, {**inputs, "prompt": ids})
