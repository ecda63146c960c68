"""Real-time playback against a simulated clock: buffers, underruns, WAV."""
import time
import wave

import numpy as np
import pytest

from lmdm_jax.codecs import get_codec
from lmdm_jax.live.player import Player, RingBuffer
from lmdm_jax.live.session import LiveSession


def test_ring_buffer_wraps_and_refuses_overflow():
  r = RingBuffer(2, 10)
  r.write(np.ones((2, 7)))
  assert r.read(5).shape == (2, 5)
  r.write(2 * np.ones((2, 8)))              # wraps around the end
  assert r.read(11) is None                 # only 10 buffered: no read
  out = r.read(10)
  np.testing.assert_array_equal(out[0], [1, 1] + [2] * 8)
  with pytest.raises(ValueError, match="overflow"):
    r.write(np.zeros((2, 11)))


@pytest.fixture(scope="module")
def session(tiny_bc_live):
  """A session on conftest's tiny BC stream (compiled once per worker for
  the live tests)."""
  spec, params = tiny_bc_live
  rng = np.random.default_rng(0)
  return LiveSession(params, spec, lambda t: rng.standard_normal(
      (spec.cond_tokens, spec.model.cond_token_dim)).astype(np.float32))


@pytest.mark.slow
def test_simulated_playback_writes_audio_without_underruns(session,
                                                           tmp_path):
  codec = get_codec("pool", latent_channels=8)
  # All 1.5 s (8 blocks of 0.19 s) are buffered before the clock starts, so
  # "no underrun" does not depend on how busy the machine is (speed belongs
  # in benchmarks, not tests; underruns under load are the next test's).
  player = Player(session, codec, buffer_blocks=9, overlap=1)
  path = str(tmp_path / "live.wav")
  report = player.play_simulated(1.5, wav_path=path, prebuffer_blocks=9)
  assert report["underruns"] == 0, report
  assert report["real_time_factor"] > 0
  with wave.open(path) as w:
    assert w.getnchannels() == 2 and w.getframerate() == 44100
    assert abs(w.getnframes() - 1.5 * 44100) <= 1024
  assert report["control_to_sound_latency_s"] > report["buffer_s"]


@pytest.mark.slow
def test_slow_generation_counts_underruns_and_keeps_playing(session):
  codec = get_codec("pool", latent_channels=8)
  player = Player(session, codec, buffer_blocks=1, overlap=0)
  real = session.next_block

  def slow():
    time.sleep(0.4)                  # each block is 0.19 s of audio
    return real()
  session.next_block = slow
  try:
    report = player.play_simulated(1.0)
  finally:
    del session.next_block
  assert report["underruns"] > 0
  assert report["callbacks"] == int(1.0 * 44100 / 1024)


def test_player_rejects_mismatched_codec(session):
  with pytest.raises(ValueError, match="latent channels"):
    Player(session, get_codec("pool"))
