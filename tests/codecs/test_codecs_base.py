"""Codec registry and the test codec."""
import numpy as np
import pytest

from lmdm_jax.codecs import get_codec, registered


def test_pool_codec_geometry_and_roundtrip_of_its_own_output():
  codec = get_codec("pool")
  assert abs(codec.frame_rate - 44100 / 2048) < 1e-9
  audio = np.random.default_rng(0).standard_normal((2, 2048 * 5 + 7))
  z = codec.encode(audio.astype(np.float32))
  assert z.shape == (5, 64)
  y = codec.decode(z)
  assert y.shape == (2, 5 * 2048)
  np.testing.assert_allclose(codec.encode(y), z, atol=1e-6)


def test_registry_errors():
  assert "pool" in registered()
  with pytest.raises(ValueError, match="unknown codec 'nope'"):
    get_codec("nope")
  with pytest.raises(ValueError, match=r"channels=2"):
    get_codec("pool").encode(np.zeros((3, 4096), np.float32))
