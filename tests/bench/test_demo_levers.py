"""benchmarks/demo_levers.py: variants parse or fail by name, the schedule
override changes a spec's levels and is undone, the contrast stretch
touches only the value channels."""

import numpy as np
import pytest

from helpers import load_benchmark


def _load():
  return load_benchmark("demo_levers")


def test_variants_schedule_and_stretch():
  from lmdm_jax.codecs import get_codec
  from lmdm_jax.diffusion import flow
  dl = _load()
  assert dl.parse_variants("default, logsnr_max=4,contrast=1.1") == [
      ("default", None), ("logsnr_max", 4.0), ("contrast", 1.1)]
  for bad in ("", "nope", "contrast", "logsnr_max=x", "default=2"):
    with pytest.raises(ValueError):
      dl.parse_variants(bad)
  before = flow.schedule("logsnr", 8)
  with dl.logsnr_max(6.0):
    inside = flow.schedule("logsnr", 8)
  np.testing.assert_array_equal(flow.schedule("logsnr", 8), before)
  assert inside[0] == 1.0 and inside[-1] == 0.0
  # The last level before 0: sigmoid(-(-6 + 7 * 12 / 8)) vs sigmoid(-1).
  assert inside[-2] == pytest.approx(1 / (1 + np.exp(4.5)), rel=1e-5)
  assert before[-2] == pytest.approx(1 / (1 + np.exp(1.0)), rel=1e-5)
  # The programs a session compiles see the override (the stream cache is
  # per spec, and the spec only names its schedule).
  from lmdm_jax.live.session import stream_for
  from lmdm_jax.model.config import DiTConfig, Geometry
  from lmdm_jax.streaming.state import StreamSpec
  spec = StreamSpec(DiTConfig(io_channels=4, embed_dim=64, depth=1,
                              num_heads=1, cond_token_dim=8),
                    Geometry(context=4, block=2, window_chunks=2), steps=8)
  default_stream = stream_for(spec)
  with dl.logsnr_max(6.0):
    assert stream_for(spec) is not default_stream   # traced anew
  assert stream_for(spec) is not default_stream       # cleared again
  with pytest.raises(RuntimeError):
    with dl.logsnr_max(3.0):
      raise RuntimeError("restored even on error")
  np.testing.assert_array_equal(flow.schedule("logsnr", 8), before)
  codec = get_codec("semitone")
  z = np.random.default_rng(0).normal(size=(10, 64)).astype(np.float32)
  s = dl.stretch(z, codec, 2.0)
  vc = codec.slices[1].stop
  np.testing.assert_array_equal(s[:, vc:], z[:, vc:])
  np.testing.assert_allclose(s[:, :vc].mean(-1), z[:, :vc].mean(-1),
                             atol=1e-5)
  np.testing.assert_allclose(s[:, :vc].std(-1), 2 * z[:, :vc].std(-1),
                             rtol=1e-5)
