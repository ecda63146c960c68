"""Evening out a package's measured level profile across its blocks."""
import math

import numpy as np
import pytest

from lmdm_jax.codecs import get_codec
from lmdm_jax.live import block_level
from lmdm_jax.live.block_level import BlockLevel

HOP = 2048


def _frame_db(audio, frames):
  x = audio.mean(0)[:frames * HOP].reshape(frames, HOP)
  return 10 * np.log10(np.mean(x.astype(np.float64) ** 2, 1) + 1e-30)


def test_profile_is_an_exact_gain_of_the_decoded_frames():
  """A constant block decoded with the profile lowered by d dB at some
  positions: those frames come back d dB quieter (the codec's value
  channels are log energies), the others unchanged, pan untouched."""
  codec = get_codec("semitone")
  rng = np.random.default_rng(0)
  frame = rng.normal(0.0, 0.6, 64).astype(np.float32)
  frame[60:] = 0.3                                     # pan channels
  z = np.repeat(frame[None], 24, axis=0)
  profile = np.zeros(24)
  profile[6:14] = 2.0                                  # these frames +2 dB
  level = BlockLevel(codec, profile)
  out = level(z)
  np.testing.assert_array_equal(z, np.repeat(frame[None], 24, axis=0))
  np.testing.assert_array_equal(out[:, 60:], z[:, 60:])
  assert np.allclose(out[6:14, :60] - z[6:14, :60],
                     -2.0 * math.log(10) / 10 / codec.scale, atol=1e-6)
  np.testing.assert_array_equal(out[:6], z[:6])
  base, fixed = _frame_db(codec.decode(z), 24), _frame_db(codec.decode(out),
                                                          24)
  # Frames whose neighbours share the shift (the envelope interpolates
  # between frame centres) drop by exactly 2 dB; the rest do not move.
  np.testing.assert_allclose(fixed[7:13] - base[7:13], -2.0, atol=0.05)
  np.testing.assert_allclose(fixed[:5] - base[:5], 0.0, atol=0.05)
  np.testing.assert_allclose(fixed[15:] - base[15:], 0.0, atol=0.05)


def test_bad_profiles_and_codecs_are_refused():
  codec = get_codec("semitone")
  for bad in ([], [float("nan")] * 24, [20.0] * 24, [[0.0] * 24]):
    with pytest.raises(ValueError, match="block_level_db"):
      BlockLevel(codec, bad)
  with pytest.raises(ValueError, match="log energies"):
    BlockLevel(get_codec("pool"), [0.0] * 24)
  level = BlockLevel(codec, [0.0] * 24)
  with pytest.raises(ValueError, match="one block"):
    level(np.zeros((12, 64), np.float32))


def test_profiles_by_cfg_interpolate_between_measured_scales():
  """With a per-CFG table a block gets the profile of its own guidance
  scale: linear between the measured scales, the nearest one outside,
  `level_db` when the scale is not known."""
  codec = get_codec("semitone")
  lo, hi = np.linspace(1.0, -1.0, 24), np.linspace(-2.0, 2.0, 24)
  level = BlockLevel(codec, lo, {"7": hi, "1.5": lo})
  np.testing.assert_allclose(level.profile(1.5), lo, atol=1e-9)
  np.testing.assert_allclose(level.profile(7.0), hi, atol=1e-9)
  np.testing.assert_allclose(level.profile(4.25), (lo + hi) / 2, atol=1e-9)
  np.testing.assert_allclose(level.profile(1.0), lo, atol=1e-9)     # below: nearest
  np.testing.assert_allclose(level.profile(25.0), hi, atol=1e-9)    # above: nearest
  np.testing.assert_allclose(level.profile(None), lo, atol=1e-9)
  z = np.zeros((24, 64), np.float32)
  per_db = math.log(10) / 10 / codec.scale
  np.testing.assert_allclose(level(z, cfg=7.0)[:, 0], -hi * per_db,
                             atol=1e-6)
  np.testing.assert_allclose(level(z)[:, 0], -lo * per_db, atol=1e-6)
  # Without a table every scale gets the one profile.
  plain = BlockLevel(codec, lo)
  np.testing.assert_array_equal(plain(z, cfg=7.0), plain(z))
  for bad, match in (({"7": hi[:12]}, "24 values"),
                     ({"seven": hi}, "map CFG scales"),
                     ({"7": [float("nan")] * 24}, r"by_cfg\[7\]"),
                     ([hi], "map CFG scales")):
    with pytest.raises(ValueError, match=match):
      BlockLevel(codec, lo, bad)


class _Pkg:
  def __init__(self, defaults, block=24):
    self.defaults = defaults
    self.geometry = type("G", (), {"block": block})()


def test_for_package_reads_the_calibration_or_nothing():
  codec = get_codec("semitone")
  assert block_level.for_package(_Pkg({"steps": 8}), codec) is None
  lv = block_level.for_package(_Pkg({"block_level_db": [0.5] * 24}), codec)
  assert lv.block == 24
  with pytest.raises(ValueError, match="24 values, the model's blocks 12"):
    block_level.for_package(_Pkg({"block_level_db": [0.5] * 24}, 12), codec)
  lv = block_level.for_package(_Pkg({"block_level_db": [0.5] * 24,
                                     "block_level_db_by_cfg": {
                                         "1.5": [0.5] * 24,
                                         "7": [-0.5] * 24}}), codec)
  np.testing.assert_allclose(lv.profile(7), -0.5, atol=1e-9)
  with pytest.raises(ValueError, match="needs defaults.block_level_db"):
    block_level.for_package(_Pkg({"block_level_db_by_cfg": {
        "7": [-0.5] * 24}}), codec)


class _Silence:
  """A level stage that zeroes every block (so its effect is visible)."""

  def __init__(self, block):
    self.block, self.calls, self.cfgs = block, 0, []

  def __call__(self, latents, cfg=None):
    self.calls += 1
    self.cfgs.append(cfg)
    return np.zeros_like(latents)


def test_player_decodes_what_the_level_stage_returns(tiny_bc_live):
  from lmdm_jax.live.player import Player
  from lmdm_jax.live.session import LiveSession
  spec, params = tiny_bc_live
  rng = np.random.default_rng(0)
  session = LiveSession(params, spec, lambda t: rng.standard_normal(
      (spec.cond_tokens, spec.model.cond_token_dim)).astype(np.float32))
  codec = get_codec("pool", latent_channels=spec.model.io_channels)
  stage = _Silence(spec.geometry.block)
  player = Player(session, codec, overlap=0, output=None, level=stage)
  session.set_cfg(2.5)
  audio = player.render(2)
  assert stage.calls == 2
  np.testing.assert_array_equal(audio, 0.0)
  # Each block's stage call gets the scale that block was generated at.
  session.set_cfg(7.0)
  player.render(1)
  assert stage.cfgs == [2.5, 2.5, 7.0]
  with pytest.raises(ValueError, match="block level profile has"):
    Player(session, codec, level=_Silence(spec.geometry.block + 1))
