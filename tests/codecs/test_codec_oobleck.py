"""Oobleck VAE: parity with stable-audio-tools, converter, streaming decode."""
import json
import os

import jax
import numpy as np
import pytest

from lmdm_jax.codecs import get_codec
from lmdm_jax.codecs.oobleck_model import (OobleckConfig, OobleckDecoder,
                                           OobleckEncoder)
from lmdm_jax.convert.oobleck import (config_from_sao, convert_oobleck,
                                      fold_weight_norm)
from lmdm_jax.convert.state_dict import ConversionError
from refenv import needs_refenv, run_reference

SMALL = dict(channels=4, c_mults=[1, 2], strides=[2, 4], use_snake=True)
MODEL_CONFIG = {"model": {"pretransform": {"type": "autoencoder", "config": {
    "encoder": {"type": "oobleck", "config": dict(
        SMALL, in_channels=2, latent_dim=6)},
    "decoder": {"type": "oobleck", "config": dict(
        SMALL, out_channels=2, latent_dim=3, final_tanh=False)}}}}}


@needs_refenv
def test_oobleck_parity_and_codec(tmp_path):
  work = str(tmp_path)
  with open(os.path.join(work, "model_config.json"), "w") as f:
    json.dump(MODEL_CONFIG, f)
  rng = np.random.default_rng(0)
  ins = {"audio": rng.uniform(-0.5, 0.5, (2, 2, 8 * 8)).astype(np.float32),
         "latents": rng.standard_normal((2, 3, 7)).astype(np.float32)}
  np.savez(os.path.join(work, "inputs.npz"), **ins)
  run_reference("oobleck.py", work)
  ref = dict(np.load(os.path.join(work, "outputs.npz")))
  out = convert_oobleck(os.path.join(work, "model.safetensors"),
                        os.path.join(work, "model_config.json"),
                        os.path.join(work, "vae"))
  codec = get_codec("oobleck", directory=os.path.join(work, "vae"))
  cfg, p = codec.config, codec.params
  assert out["oobleck"]["latent_dim"] == 3 and codec.hop == 8
  enc = OobleckEncoder(cfg).apply({"params": p["encoder"]},
                                  ins["audio"].transpose(0, 2, 1))
  dec = OobleckDecoder(cfg).apply({"params": p["decoder"]},
                                  ins["latents"].transpose(0, 2, 1))
  for ours, theirs in ((enc, ref["encoded"]), (dec, ref["decoded"])):
    ours = np.asarray(ours).transpose(0, 2, 1)
    assert ours.shape == theirs.shape and theirs.std() > 0.1
    err = np.abs(ours - theirs).max()
    print(f"oobleck max abs err {err:.3g}, std {theirs.std():.3g}")
    assert err <= 1e-4, err
  # Codec API: mean half of the encoder output, channels-first audio.
  np.testing.assert_allclose(codec.encode(ins["audio"][0]),
                             ref["encoded"][0, :3].T, atol=1e-4)
  np.testing.assert_allclose(codec.decode(ins["latents"][0].T),
                             ref["decoded"][0], atol=1e-4)


def _random_codec(seed=0):
  """Every parameter random (numpy: no per-op compilation)."""
  from lmdm_jax.convert.oobleck import param_shapes
  cfg = OobleckConfig(channels=4, c_mults=(1, 2), strides=(2, 4),
                      latent_dim=3, use_snake=True)
  rng = np.random.default_rng(seed)
  params = jax.tree.map(
      lambda a: (rng.standard_normal(a.shape) / np.sqrt(
          np.prod(a.shape[:-1]) if len(a.shape) == 3 else 10.0)).astype(
              np.float32), param_shapes(cfg))
  return get_codec("oobleck", config=cfg, params=params)


@pytest.mark.parametrize("block", [1, 7])
def test_streaming_decode_equals_whole_sequence(block):
  codec = _random_codec()
  z = np.random.default_rng(1).standard_normal((50, 3)).astype(np.float32)
  whole = codec.decode(z)
  dec = codec.stream_decoder()
  parts = [dec.push(z[i:i + block]) for i in range(0, len(z), block)]
  parts.append(dec.flush())
  streamed = np.concatenate(parts, axis=1)
  assert streamed.shape == whole.shape
  err = np.abs(streamed - whole).max()
  assert err <= 1e-5 * max(1.0, np.abs(whole).max()), err
  # Latency: nothing before 2 * radius + 1 frames, then `radius` frames.
  n, r = 0, dec.radius
  for i, part in enumerate(parts[:-1]):
    n += min(block, len(z) - i * block)
    want = 0 if n < 2 * r + 1 else n - r
    assert sum(q.shape[1] for q in parts[:i + 1]) == want * codec.hop
  # A window narrower than the radius changes the output.
  # (Measured: the tightest exact context is 19 frames here, radius 21.)
  narrow = codec.decode(z[:25 + 1 + dec.radius - 3])[:, 25 * 8:26 * 8]
  assert np.abs(narrow - whole[:, 25 * 8:26 * 8]).max() > 1e-6


def test_weight_norm_folding_and_errors(tmp_path):
  rng = np.random.default_rng(0)
  v = rng.standard_normal((4, 3, 5)).astype(np.float32)
  g = rng.uniform(0.5, 1.5, (4, 1, 1)).astype(np.float32)
  want = g * v / np.linalg.norm(v.reshape(4, -1), axis=1)[:, None, None]
  for names in (("weight_g", "weight_v"),
                ("parametrizations.weight.original0",
                 "parametrizations.weight.original1")):
    out = fold_weight_norm({f"a.{names[0]}": g, f"a.{names[1]}": v})
    np.testing.assert_allclose(out["a.weight"], want, rtol=1e-6)
  cfg = config_from_sao(MODEL_CONFIG)
  assert cfg.latent_dim == 3 and cfg.hop == 8
  bad = json.loads(json.dumps(MODEL_CONFIG))
  bad["model"]["pretransform"]["config"]["encoder"]["config"][
      "latent_dim"] = 3
  with pytest.raises(ValueError, match="2 \\* latent_dim"):
    config_from_sao(bad)
  from lmdm_jax.convert.oobleck import convert_state_dict
  with pytest.raises(ConversionError, match="missing"):
    convert_state_dict({"pretransform.model.decoder.layers.0.bias":
                        np.zeros(8, np.float32)}, cfg)
  with pytest.raises(ValueError, match="directory="):
    get_codec("oobleck")
