"""lmdm_jax/live/recording.py: audio and latents to disk as made."""
import os
import wave

import numpy as np
import pytest

from lmdm_jax.live import recording


def _blocks(seed=0, n=7, channels=2):
  rng = np.random.default_rng(seed)
  return [rng.uniform(-1, 1, (channels, int(rng.integers(1, 5000))))
          .astype(np.float32) for _ in range(n)]


def test_wav_writer_is_a_valid_wav_after_every_write(tmp_path):
  path = str(tmp_path / "a.wav")
  w = recording.WavWriter(path, 2, 44100)
  total = 0
  for b in _blocks():
    w.write(b)
    total += b.shape[1]
    w._w._file.flush()
    with wave.open(path) as r:            # as a killed process leaves it
      assert r.getnframes() == total
  w.close()
  with pytest.raises(ValueError, match="channels"):
    recording.WavWriter(str(tmp_path / "b.wav"), 2, 44100).write(
        np.zeros((1, 4), np.float32))


@pytest.mark.parametrize("path", [None, "rec.wav"])
def test_recorder_writes_what_was_put(tmp_path, path):
  rec = recording.Recorder(None if path is None else str(tmp_path / path),
                           2, 44100)
  blocks = _blocks(1)
  for b in blocks:
    rec.put(b)
    b[:] = 0                              # the recorder copied it
  rec.close()
  want = np.concatenate(_blocks(1), axis=1)
  got = rec.read()
  assert rec.frames == want.shape[1] == got.shape[1]
  np.testing.assert_allclose(got, want, atol=0 if path is None else 1 / 16000)
  tmp = rec.path
  rec.delete()
  assert os.path.exists(tmp) == (path is not None)


def test_spool_reads_back_in_chunks_and_scales(tmp_path):
  blocks = _blocks(2)
  spool = recording.Spool(str(tmp_path), 2)
  for b in blocks:
    spool.write(b)
  want = np.concatenate(blocks, axis=1)
  assert spool.frames == want.shape[1]
  assert spool.peak == pytest.approx(float(np.abs(want).max()))
  got = np.concatenate(list(spool.chunks(chunk=1000)), axis=1)
  np.testing.assert_array_equal(got, want)
  n = spool.to_wav(str(tmp_path / "o.wav"), 44100, scale=0.5, frames=9000)
  with wave.open(str(tmp_path / "o.wav")) as r:
    pcm = np.frombuffer(r.readframes(r.getnframes()), "<i2")
  assert n == 9000 == pcm.size // 2
  np.testing.assert_allclose(pcm.reshape(-1, 2).T / 32767,
                             0.5 * want[:, :9000], atol=1 / 16000)
  spool.close()
  assert not os.path.exists(spool.path)


def test_latent_log_counts_and_streams_latents(tmp_path):
  log = recording.LatentLog(str(tmp_path / "z.npy"))
  rng = np.random.default_rng(3)
  xs = [rng.standard_normal((1, 4, 8)).astype(np.float32) for _ in range(5)]
  for x in xs:
    log.append(x)
  assert len(log) == 5
  assert log.finish() == str(tmp_path / "z.npy")
  np.testing.assert_array_equal(np.load(tmp_path / "z.npy"),
                                np.concatenate(xs, axis=1)[0])
  assert os.listdir(tmp_path) == ["z.npy"]
  count_only = recording.LatentLog()
  count_only.append(xs[0])
  assert len(count_only) == 1 and count_only.finish() is None
