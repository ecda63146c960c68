"""Real-time playback: a generation thread ahead of an audio callback.

    player = Player(session, codec, buffer_blocks=2)
    player.play_sounddevice(seconds=60)          # sound card (PortAudio)
    report = player.play_simulated(seconds=30, wav_path="out.wav")

A generation thread turns latent blocks into audio (codec decode) and writes
them into a ring buffer; the audio callback reads fixed periods from it.
When the buffer runs dry the callback outputs silence and counts an
underrun: playback never crashes because the model was late. Without a
sound device the same callback is driven by a simulated clock that calls it
at the audio rate in real (wall) time, which is what tests and servers use.

Block boundaries: each block is decoded together with the last `overlap`
latent frames of the previous block and crossfaded (equal power) over the
audio of those frames, so decoder edge effects do not click.

Latency accounting (control-to-sound): a control set now affects the next
block generated; that block is heard after the audio already buffered plays
out: latency ~ compute per block + buffered audio (<= buffer_blocks blocks)
+ one callback period.
"""
from __future__ import annotations

import threading
import time
from typing import Optional

import numpy as np

from lmdm_jax.codecs.base import Codec


class RingBuffer:
  """Thread-safe float32 ring buffer of [channels, capacity] samples."""

  def __init__(self, channels: int, capacity: int):
    self.data = np.zeros((channels, capacity), np.float32)
    self.capacity = capacity
    self.read_pos = 0
    self.size = 0
    self.lock = threading.Lock()

  def free(self) -> int:
    with self.lock:
      return self.capacity - self.size

  def write(self, audio: np.ndarray) -> None:
    n = audio.shape[1]
    with self.lock:
      if n > self.capacity - self.size:
        raise ValueError(f"ring buffer overflow: {n} samples, "
                         f"{self.capacity - self.size} free")
      start = (self.read_pos + self.size) % self.capacity
      idx = (start + np.arange(n)) % self.capacity
      self.data[:, idx] = audio
      self.size += n

  def read(self, n: int) -> Optional[np.ndarray]:
    """n samples, or None (nothing consumed) if fewer are buffered."""
    with self.lock:
      if self.size < n:
        return None
      idx = (self.read_pos + np.arange(n)) % self.capacity
      out = self.data[:, idx].copy()
      self.read_pos = (self.read_pos + n) % self.capacity
      self.size -= n
      return out


class Player:
  """Plays a `LiveSession` (voice 0) through a codec in real time."""

  def __init__(self, session, codec: Codec, buffer_blocks: int = 2,
               overlap: int = 1, period: int = 1024):
    g = session.spec.geometry
    if codec.latent_channels != session.spec.model.io_channels:
      raise ValueError(
          f"codec {codec.name} has {codec.latent_channels} latent channels, "
          f"the model {session.spec.model.io_channels}")
    if not 0 <= overlap < g.block:
      raise ValueError(f"overlap must be in [0, {g.block}), got {overlap}")
    if buffer_blocks < 1:
      raise ValueError(f"buffer_blocks must be >= 1, got {buffer_blocks}")
    self.session, self.codec = session, codec
    self.overlap, self.period = overlap, period
    self.block_samples = g.block * codec.hop
    self.ring = RingBuffer(codec.channels,
                           buffer_blocks * self.block_samples + period)
    self.underruns = 0
    self.callbacks = 0
    self.compute_s = []
    self._tail = None            # held-back audio of the previous overlap
    self._prev_latents = None
    self._stop = threading.Event()
    self._error: Optional[BaseException] = None

  # -- generation -------------------------------------------------------------
  def _next_audio(self) -> np.ndarray:
    t0 = time.perf_counter()
    latents = self.session.next_block()[0]            # [o, C]
    k = self.overlap
    if k and self._prev_latents is not None:
      audio = self.codec.decode(np.concatenate(
          [self._prev_latents[-k:], latents]))
      head, audio = audio[:, :k * self.codec.hop], audio[:, k * self.codec.hop:]
      fade = np.sin(0.5 * np.pi * np.linspace(0, 1, head.shape[1]))
      joined = self._tail * np.cos(0.5 * np.pi *
                                   np.linspace(0, 1, head.shape[1])) + (
                                       head * fade)
      audio = np.concatenate([joined, audio], axis=1)
    else:
      audio = self.codec.decode(latents)
    self._prev_latents = latents
    if k:
      # Hold back the last overlap's audio to crossfade with the next block.
      cut = audio.shape[1] - k * self.codec.hop
      self._tail, audio = audio[:, cut:], audio[:, :cut]
    self.compute_s.append(time.perf_counter() - t0)
    return audio

  def _generate(self) -> None:
    try:
      while not self._stop.is_set():
        if self.ring.free() >= self.block_samples + self.codec.hop:
          self.ring.write(self._next_audio())
        else:
          time.sleep(0.002)
    except BaseException as e:  # surfaced by the caller, never in callback
      self._error = e

  def callback(self, n: int) -> np.ndarray:
    """Audio for the next n samples [channels, n]; silence on underrun."""
    self.callbacks += 1
    out = self.ring.read(n)
    if out is None:
      self.underruns += 1
      return np.zeros((self.codec.channels, n), np.float32)
    return out

  # -- drivers ------------------------------------------------------------------
  def render(self, blocks: int, on_block=None) -> np.ndarray:
    """File out: `blocks` blocks as fast as they compute, no clock.

    -> audio [channels, blocks * o * hop]. on_block(i) is called after
    block i; per-block compute (model + decode) lands in `compute_s`.
    """
    if blocks < 1:
      raise ValueError(f"blocks must be >= 1, got {blocks}")
    out = []
    for i in range(blocks):
      out.append(self._next_audio())
      if on_block is not None:
        on_block(i)
    if self._tail is not None:          # the held-back last overlap
      out.append(self._tail)
      self._tail = None
    return np.concatenate(out, axis=1)

  def play_simulated(self, seconds: float, wav_path: Optional[str] = None,
                     prebuffer_blocks: int = 1) -> dict:
    """Drives the callback from a wall-clock-paced simulated sound card."""
    for _ in range(prebuffer_blocks):
      self.ring.write(self._next_audio())
    thread = threading.Thread(target=self._generate, daemon=True)
    thread.start()
    sr = self.codec.sample_rate
    n_periods = int(seconds * sr / self.period)
    out = []
    start = time.perf_counter()
    for i in range(n_periods):
      due = start + i * self.period / sr
      delay = due - time.perf_counter()
      if delay > 0:
        time.sleep(delay)
      out.append(self.callback(self.period))
    self._stop.set()
    thread.join()
    if self._error is not None:
      raise self._error
    audio = np.concatenate(out, axis=1)
    if wav_path:
      write_wav(wav_path, audio, sr)
    return self.report(seconds)

  def play_sounddevice(self, seconds: float) -> dict:
    """Plays through the default output device (needs sounddevice)."""
    try:
      import sounddevice as sd
    except (ImportError, OSError) as e:
      raise RuntimeError(
          "sounddevice/PortAudio is not available; install the `live` extra "
          "and Debian's libportaudio2, or use play_simulated") from e
    self.ring.write(self._next_audio())
    thread = threading.Thread(target=self._generate, daemon=True)
    thread.start()

    def cb(outdata, frames, time_info, status):
      del time_info, status
      outdata[:] = self.callback(frames).T

    with sd.OutputStream(samplerate=self.codec.sample_rate,
                         channels=self.codec.channels, blocksize=self.period,
                         dtype="float32", callback=cb):
      time.sleep(seconds)
    self._stop.set()
    thread.join()
    if self._error is not None:
      raise self._error
    return self.report(seconds)

  def report(self, seconds: float) -> dict:
    block_s = self.block_samples / self.codec.sample_rate
    compute = float(np.median(self.compute_s)) if self.compute_s else 0.0
    buffered = (self.ring.capacity - self.period) / self.codec.sample_rate
    return {"seconds": seconds, "underruns": self.underruns,
            "callbacks": self.callbacks, "block_s": block_s,
            "compute_per_block_s": compute, "buffer_s": buffered,
            "control_to_sound_latency_s": compute + buffered
            + self.period / self.codec.sample_rate,
            "real_time_factor": block_s / compute if compute else None}


def write_wav(path: str, audio: np.ndarray, sample_rate: int) -> None:
  """16-bit PCM WAV of audio [channels, samples] with the stdlib `wave`."""
  import wave
  pcm = (np.clip(audio, -1, 1).T * 32767).astype("<i2")
  with wave.open(path, "wb") as w:
    w.setnchannels(audio.shape[0])
    w.setsampwidth(2)
    w.setframerate(sample_rate)
    w.writeframes(pcm.tobytes())
