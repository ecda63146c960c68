"""Live input -> per-block controls: the generative delay (paper sec. 5.4).

A musician plays while the model plays. Each block's controls are computed,
when the block is about to be generated, from the input heard so far
(`LiveInput`): the output at timeline frame f follows the input at frame
f - delay (timeline: lmdm_jax/live/track.py). Sketch controls make the
model re-synthesise the player's line in its own timbre about `delay`
later; the partner control (jam models) makes it accompany the player.

Which delay keeps up: block i is generated while earlier blocks play, when
the player's buffer has room, i.e. about `buffer_blocks` blocks before it
is heard; its window ends at frame (i + 1) * o, so its input is complete
only if delay >= (buffer_blocks + 1) * o frames (the default of `lmdm live
--input`). A shorter delay is allowed: the frames not heard yet are absent
(mask 0), and `given_fraction` says how much of the windows was heard.

Input sources: `attach_file` plays a file in step with the output clock
(file in -> file out, with the simulated clock or the sound card);
`attach_mic` captures a sound-card input (sounddevice).
"""
from __future__ import annotations

import threading
from typing import Dict, Sequence

import numpy as np

from lmdm_jax.data import controls as extract
from lmdm_jax.model import control_inputs as inputs


class LiveInput:
  """Input audio that arrives while a stream plays -> per-block controls.

  `push(audio)` appends captured audio ([channels, samples], codec rate;
  thread-safe). `block_window(i)` (called when block i is about to be
  generated) computes the controls of block i's window from the audio
  heard so far: timeline frame f reads input frame f - delay; input frames
  not (completely) heard are absent. Sketch controls are extracted from
  the heard audio around the window (`margin` frames more on the left, so
  the features' analysis windows are not cut); the partner control is the
  codec's latents of that audio.

  Args:
    codec: the model's codec (sample_rate, frame_rate, hop, encode).
    names: controls to compute: sketch names and/or "partner".
    context, block: the stream geometry (frames).
    delay: generative delay in frames (>= 0).
    channels: channels of the pushed audio.
  """

  def __init__(self, codec, names: Sequence[str], context: int, block: int,
               delay: int, channels: int = 2, pitch_method: str = "yin",
               margin: int = 8, cqt_bins: int = 84):
    if delay < 0:
      raise ValueError(f"delay must be >= 0 frames, got {delay}")
    names = list(names)
    bad = [n for n in names if n != inputs.PARTNER and
           n not in extract.AUDIO_CONTROLS]
    if bad or not names:
      raise ValueError(f"live input controls must be among "
                       f"{extract.AUDIO_CONTROLS + (inputs.PARTNER,)}, got "
                       f"{names}")
    self.codec, self.names = codec, names
    self.sketch = [n for n in names if n != inputs.PARTNER]
    self.context, self.block, self.delay = context, block, int(delay)
    self.pitch_method, self.margin, self.cqt_bins = (pitch_method, margin,
                                                     cqt_bins)
    self.hop = int(round(codec.sample_rate / codec.frame_rate))
    self._buf = np.zeros((channels, 0), np.float32)
    self._lock = threading.Lock()
    self.given_frames = 0            # window frames given (mask 1), total
    self.window_frames = 0           # window frames asked for, total

  def warm_up(self) -> float:
    """Runs the feature extractors once on a short noise (librosa's first
    calls compile and cache: seconds that must not fall on a live block).
    -> seconds taken."""
    import time
    t0 = time.perf_counter()
    n = self.context + self.block
    x = 0.01 * np.random.default_rng(0).standard_normal(
        (self.codec.channels, n * self.hop)).astype(np.float32)
    if self.sketch:
      extract.extract(self.sketch, x, self.codec.sample_rate,
                      self.codec.frame_rate, n,
                      pitch_method=self.pitch_method, cqt_bins=self.cqt_bins,
                      frame_centre=self.codec.frame_centre)
    if inputs.PARTNER in self.names:
      self.codec.encode(x)
    return time.perf_counter() - t0

  @property
  def heard_samples(self) -> int:
    with self._lock:
      return self._buf.shape[1]

  def push(self, audio) -> None:
    x = np.asarray(audio, np.float32)
    if x.ndim != 2 or x.shape[0] != self._buf.shape[0]:
      raise ValueError(f"pushed audio must be [{self._buf.shape[0]}, "
                       f"samples], got shape {np.shape(audio)}")
    with self._lock:
      self._buf = np.concatenate([self._buf, x], axis=1)

  def block_window(self, block: int) -> Dict[str, np.ndarray]:
    """name -> packed [context + block, dim + 1] for block `block`."""
    t = self.context + self.block
    lo = block * self.block - self.context - self.delay   # input frames
    with self._lock:
      buf = self._buf
    heard = buf.shape[1] // self.hop            # complete input frames
    out = {n: None for n in self.names}
    a0 = max(lo - self.margin, 0)               # analysed input frames
    a1 = min(lo + t, heard)
    self.window_frames += t
    if a1 <= max(lo, 0):                        # nothing heard in the window
      return {}
    seg = buf[:, a0 * self.hop:a1 * self.hop]
    n = a1 - a0
    feats = {}
    if self.sketch and np.abs(seg).max() > 0:
      feats = extract.extract(self.sketch, seg, self.codec.sample_rate,
                              self.codec.frame_rate, n,
                              pitch_method=self.pitch_method,
                              cqt_bins=self.cqt_bins,
                              frame_centre=self.codec.frame_centre)
    if inputs.PARTNER in self.names:
      if seg.shape[0] != self.codec.channels:     # e.g. a mono microphone
        seg = np.repeat(seg.mean(0, keepdims=True), self.codec.channels, 0)
      z = np.asarray(self.codec.encode(seg), np.float32)[:n]
      z = np.pad(z, [(0, n - z.shape[0]), (0, 0)])
      feats[inputs.PARTNER] = inputs.pack(z)
    for name, a in feats.items():
      w = np.zeros((t, a.shape[1]), np.float32)
      s0 = max(lo, a0)
      w[s0 - lo:a1 - lo] = a[s0 - a0:a1 - a0]
      out[name] = w
    self.given_frames += a1 - max(lo, 0)
    return {k: v for k, v in out.items() if v is not None}

  @property
  def given_fraction(self) -> float:
    """Fraction of window frames whose input had been heard in time."""
    return self.given_frames / max(self.window_frames, 1)


def default_delay(block: int, buffer_blocks: int) -> int:
  """Smallest delay (frames) whose windows are complete when generated."""
  return (buffer_blocks + 1) * block


def attach_file(session, player, live: LiveInput, audio) -> None:
  """Plays `audio` [channels, samples] in step with `player`'s output: before
  block i, everything up to the samples played so far has been heard."""
  x = np.asarray(audio, np.float32)
  pushed = [0]

  def source(i: int):
    heard = min(player.callbacks * player.period, x.shape[1])
    if heard > pushed[0]:
      live.push(x[:, pushed[0]:heard])
      pushed[0] = heard
    return live.block_window(i)
  session.control_source = source


def attach_mic(session, live: LiveInput, sample_rate: int, channels: int,
               device=None):
  """Captures a sound-card input into `live` (sounddevice InputStream);
  returns the started stream (stop() and close() it when done)."""
  try:
    import sounddevice as sd
  except (ImportError, OSError) as e:
    raise RuntimeError(f"no sound-card input: {e}") from e

  def cb(indata, frames, time_info, status):
    del frames, time_info, status
    live.push(np.asarray(indata, np.float32).T.copy())
  stream = sd.InputStream(samplerate=sample_rate, channels=channels,
                          dtype="float32", callback=cb, device=device)
  stream.start()
  session.control_source = live.block_window
  return stream
