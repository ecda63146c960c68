"""Audio and latents to disk as they are made: memory bounded for any length.

  w = WavWriter("out.wav", channels=2, sample_rate=44100)
  w.write(block)                      # [channels, n] float, any n
  w.close()                           # the file is a valid WAV after every write

  rec = Recorder("live.wav", 2, 44100)  # from a real-time audio callback:
  rec.put(out)                        # O(1), never touches the disk
  rec.close()                         # a writer thread did the writing

  spool = Spool(folder, channels=2)   # raw float32 on disk, peak tracked
  spool.write(block); spool.to_wav("out.wav", 44100, scale=0.89 / spool.peak)

Why: a performance may last a day (`lmdm live --seconds 86400`) and a file
an hour (`lmdm generate --seconds 3600`); keeping every sample in memory
costs 0.35 MB per second of 44.1 kHz stereo float32 (30 GB a day). Here only
a bounded chunk is ever held: `WavWriter` appends 16-bit PCM and `wave`
patches the header after each write (so even a SIGKILL leaves a valid WAV of
what was written), `Recorder` moves the callback's periods to a writer
thread through a queue (no disk I/O in the audio callback, as PortAudio's
own recorders do), and `Spool` keeps float32 blocks on disk for a result
that needs the whole signal's peak before it can be written (`lmdm
generate`'s peak normalisation), read back in fixed-size chunks.
"""
from __future__ import annotations

import os
import queue
import tempfile
import threading
import wave
import weakref
from typing import Optional

import numpy as np

CHUNK = 1 << 16             # samples per read-back chunk (~1.5 s at 44.1 kHz)


def _remove_quietly(path: str) -> None:
  try:
    os.remove(path)
  except OSError:
    pass


def to_pcm16(audio: np.ndarray) -> bytes:
  """[channels, n] float in [-1, 1] (clipped) -> interleaved 16-bit bytes."""
  return (np.clip(audio, -1, 1).T * 32767).astype("<i2").tobytes()


class WavWriter:
  """16-bit PCM WAV written block by block ([channels, n] float32 in)."""

  def __init__(self, path: str, channels: int, sample_rate: int):
    self.path, self.channels = path, int(channels)
    self.frames = 0
    self._w = wave.open(path, "wb")
    self._w.setnchannels(self.channels)
    self._w.setsampwidth(2)
    self._w.setframerate(int(sample_rate))

  def write(self, audio: np.ndarray) -> None:
    if audio.shape[0] != self.channels:
      raise ValueError(f"{self.path}: block has {audio.shape[0]} channels, "
                       f"the file {self.channels}")
    if audio.shape[1]:
      # writeframes patches the header's sizes after every call.
      self._w.writeframes(to_pcm16(audio))
      self.frames += audio.shape[1]

  def close(self) -> None:
    if self._w is not None:
      self._w.close()
      self._w = None


class Recorder:
  """What an audio callback outputs, written to disk by a writer thread.

  path: a .wav (16-bit PCM, for people) or None (a temporary float32 file,
  exact, read back with `read()`; deleted by `close(delete=True)` or at
  exit). `put` copies the period into a queue and returns: the callback
  never waits on the disk. The queue holds what the writer has not yet
  written, a few periods when the disk keeps up (it writes ~1000x faster
  than audio plays).
  """

  def __init__(self, path: Optional[str], channels: int, sample_rate: int):
    self.channels, self.sample_rate = int(channels), int(sample_rate)
    self.frames = 0
    self.error: Optional[BaseException] = None
    if path is None:
      fd, self.path = tempfile.mkstemp(prefix="lmdm_rec_", suffix=".f32")
      self._raw = os.fdopen(fd, "wb")
      self._wav = None
      # The temporary file goes with the recorder (or at exit).
      weakref.finalize(self, _remove_quietly, self.path)
    else:
      self.path, self._raw = path, None
      self._wav = WavWriter(path, channels, sample_rate)
    self._q: "queue.Queue[Optional[np.ndarray]]" = queue.Queue()
    self._thread = threading.Thread(target=self._drain, daemon=True)
    self._thread.start()

  def put(self, audio: np.ndarray) -> None:
    """Queues one period [channels, n] (copied; safe from the callback)."""
    self._q.put(np.array(audio, np.float32, copy=True))

  def pending(self) -> int:
    """Periods queued and not yet written."""
    return self._q.qsize()

  def _drain(self) -> None:
    while True:
      x = self._q.get()
      if x is None:
        return
      if self.error is not None:
        continue                  # keep draining so memory stays bounded
      try:
        if self._wav is not None:
          self._wav.write(x)
        else:
          self._raw.write(np.ascontiguousarray(x.T).tobytes())
        self.frames += x.shape[1]
      except BaseException as e:  # noqa: BLE001  (reported by close)
        self.error = e

  def close(self) -> None:
    """Writes what is queued and closes the file; raises a write error."""
    if self._thread is not None:
      self._q.put(None)
      self._thread.join()
      self._thread = None
      if self._wav is not None:
        self._wav.close()
      else:
        self._raw.close()
    if self.error is not None:
      raise RuntimeError(f"recording to {self.path} failed: "
                         f"{self.error}") from self.error

  def read(self) -> np.ndarray:
    """The recording [channels, frames] float32 (after `close`)."""
    if self._thread is not None:
      raise RuntimeError("close() the recorder before reading it")
    if self._wav is not None:
      with wave.open(self.path) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
      return (pcm.reshape(-1, self.channels).T / 32767).astype(np.float32)
    x = np.fromfile(self.path, np.float32)
    return x.reshape(-1, self.channels).T.copy()

  def delete(self) -> None:
    """Removes a temporary recording's file."""
    if self._wav is None and os.path.exists(self.path):
      os.remove(self.path)


class Spool:
  """float32 blocks on disk (a temporary file in `folder`); tracks the peak.

  For outputs that need the whole signal before they can be written: the
  blocks go to disk as they come, `to_wav` reads them back CHUNK samples
  at a time. The file is removed by `close()` (also on error paths).
  """

  def __init__(self, folder: str, channels: int, prefix: str = ".lmdm_"):
    self.channels = int(channels)
    fd, self.path = tempfile.mkstemp(prefix=prefix, suffix=".f32",
                                     dir=folder)
    self._f = os.fdopen(fd, "w+b")
    self.peak = 0.0

  @property
  def frames(self) -> int:
    """Frames written (from the file's size: a write cut short by an
    interrupt counts only whole frames)."""
    self._f.flush()
    return os.fstat(self._f.fileno()).st_size // (4 * self.channels)

  def write(self, audio: np.ndarray) -> None:
    audio = np.asarray(audio, np.float32)
    if audio.shape[0] != self.channels:
      raise ValueError(f"block has {audio.shape[0]} channels, the spool "
                       f"{self.channels}")
    if audio.shape[1]:
      self.peak = max(self.peak, float(np.abs(audio).max()))
      self._f.write(np.ascontiguousarray(audio.T).tobytes())

  def chunks(self, frames: Optional[int] = None, chunk: int = CHUNK):
    """Yields [channels, <= chunk] float32 blocks of the first `frames`."""
    total = self.frames if frames is None else min(frames, self.frames)
    step = 4 * self.channels
    for start in range(0, total, chunk):
      n = min(chunk, total - start)
      self._f.seek(start * step)
      x = np.frombuffer(self._f.read(n * step), np.float32)
      yield x.reshape(n, self.channels).T
    self._f.seek(0, os.SEEK_END)

  def to_wav(self, path: str, sample_rate: int, scale: float = 1.0,
             frames: Optional[int] = None, add=None) -> int:
    """Writes the first `frames` frames * scale as a 16-bit WAV (add: an
    optional callable (start, n) -> [channels, n] added before scaling).
    -> frames written."""
    w = WavWriter(path, self.channels, sample_rate)
    try:
      start = 0
      for x in self.chunks(frames):
        if add is not None:
          x = x + add(start, x.shape[1])
        w.write(x * np.float32(scale))
        start += x.shape[1]
    finally:
      w.close()
    return w.frames

  def peak_of(self, add, frames: Optional[int] = None) -> float:
    """Peak of (blocks + add(start, n)) over the first `frames` frames."""
    peak, start = 0.0, 0
    for x in self.chunks(frames):
      peak = max(peak, float(np.abs(x + add(start, x.shape[1])).max()))
      start += x.shape[1]
    return peak

  def close(self) -> None:
    if self._f is not None:
      self._f.close()
      self._f = None
      if os.path.exists(self.path):
        os.remove(self.path)


class LatentLog:
  """Stands in for `LiveSession.recorded`: counts blocks, keeps none.

  The session appends every block's latents [B, o, C] to `recorded` and
  reads its length as the block count; a day of the demo model is 0.5 GB of
  latents. This keeps the count and, given `path` (.npy), streams voice 0's
  latents [frames, C] to disk (a raw temporary file, turned into the .npy
  by `finish`).
  """

  def __init__(self, path: Optional[str] = None):
    self.path = path
    self._n = 0
    self._f = None
    self._shape = None
    if path is not None:
      self._tmp = path + ".part"
      self._f = open(self._tmp, "wb")

  def append(self, x) -> None:
    self._n += 1
    if self._f is not None:
      x = np.asarray(x[0], np.float32)          # voice 0: [o, C]
      self._shape = x.shape[1:]
      self._f.write(np.ascontiguousarray(x).tobytes())

  def __len__(self) -> int:
    return self._n

  def discard(self) -> None:
    """Closes and removes the raw file of an unfinished log."""
    if self._f is not None:
      self._f.close()
      self._f = None
      if os.path.exists(self._tmp):
        os.remove(self._tmp)

  def finish(self, frames: Optional[int] = None) -> Optional[str]:
    """Writes the .npy ([frames, C], the first `frames` if given) and
    removes the raw file; -> the path (None when there was none)."""
    if self._f is None:
      return None
    self._f.close()
    self._f = None
    try:
      if self._shape is None:
        return None
      raw = np.memmap(self._tmp, np.float32, "r").reshape(
          (-1,) + self._shape)
      n = raw.shape[0] if frames is None else min(frames, raw.shape[0])
      out = np.lib.format.open_memmap(self.path, "w+", np.float32,
                                      (n,) + self._shape)
      for s in range(0, n, CHUNK):
        out[s:s + CHUNK] = raw[s:min(n, s + CHUNK)]
      out.flush()
      del out, raw
      return self.path
    finally:
      if os.path.exists(self._tmp):
        os.remove(self._tmp)
