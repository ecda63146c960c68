"""Reading audio files and bringing them to a codec's format.

Audio arrays are float32 [channels, samples]. Conversion to a codec:
channel count first (mono is repeated; more channels than the codec takes
are averaged to mono and then repeated), then the sample rate (librosa's
soxr resampler). Files that cannot become useful training data raise
`BadAudio` with the reason the build report lists.
"""
from __future__ import annotations

import numpy as np

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")
SILENCE_PEAK = 1e-4          # -80 dBFS: quieter files count as silent


class BadAudio(ValueError):
  """A file that is skipped; str(e) is the reason."""


def read(path: str):
  """-> (audio [channels, samples] float32, sample_rate). BadAudio if the
  file cannot be decoded or holds NaN/inf samples."""
  import soundfile as sf
  try:
    x, sr = sf.read(path, dtype="float32", always_2d=True)
  except Exception as e:  # noqa: BLE001  (libsndfile raises several kinds)
    raise BadAudio(f"unreadable: {type(e).__name__}: {e}") from e
  x = x.T
  if x.size == 0:
    raise BadAudio("unreadable: no samples")
  if not np.isfinite(x).all():
    raise BadAudio("non-finite samples (NaN or inf)")
  return np.ascontiguousarray(x), int(sr)


def convert(audio: np.ndarray, sample_rate: int, channels: int,
            target_rate: int) -> np.ndarray:
  """[c, n] at sample_rate -> [channels, m] at target_rate, float32."""
  audio = np.asarray(audio, np.float32)
  if audio.ndim != 2:
    raise ValueError(f"audio must be [channels, samples], got {audio.shape}")
  c = audio.shape[0]
  if c != channels:
    mono = audio.mean(axis=0, keepdims=True)
    audio = np.repeat(mono, channels, axis=0)
  if sample_rate != target_rate:
    import librosa
    audio = librosa.resample(audio, orig_sr=sample_rate,
                             target_sr=target_rate, axis=-1)
  return np.ascontiguousarray(audio, dtype=np.float32)


def load_for_codec(path: str, codec):
  """Reads and converts a file for `codec`. -> (audio, original rate,
  original duration in seconds). BadAudio for unreadable, non-finite or
  silent files."""
  x, sr = read(path)
  if np.abs(x).max() < SILENCE_PEAK:
    raise BadAudio(f"silent (peak below {SILENCE_PEAK})")
  duration = x.shape[1] / sr
  return convert(x, sr, codec.channels, codec.sample_rate), sr, duration


def read_converted(path: str, codec) -> np.ndarray:
  """A control/partner file as [codec channels, samples] at the codec's
  rate. Unlike `load_for_codec`, silence is allowed (a part may rest);
  unreadable or non-finite files raise ValueError naming the file."""
  try:
    x, sr = read(path)
  except Exception as e:  # noqa: BLE001  (any decoder error: say which file)
    raise ValueError(f"cannot read {path}: {e}") from e
  if not np.isfinite(x).all():
    raise ValueError(f"{path} holds NaN or inf samples")
  return convert(x, sr, codec.channels, codec.sample_rate)
