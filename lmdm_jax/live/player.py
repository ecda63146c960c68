"""Real-time playback: a generation thread ahead of an audio callback.

    player = Player(session, codec, buffer_blocks=2)
    player.play_sounddevice(seconds=60)          # sound card (PortAudio)
    report = player.play_simulated(seconds=30, wav_path="out.wav")

    player.start_simulated()                     # or start_sounddevice()
    with player.lock:                            # between two blocks
      session.set_cfg(3.0)
    report = player.stop()                       # audio: player.played()

Recording (`record=`) goes to disk as it plays (`recording.Recorder`: a
writer thread, no disk I/O in the callback), so memory stays bounded however
long the performance: record="perf.wav" writes that WAV, record=True a
temporary float32 file that `played()` reads back.

A generation thread turns latent blocks into audio (codec decode) and writes
them into a ring buffer; the audio callback reads fixed periods from it.
When the buffer runs dry the callback outputs silence and counts an
underrun: playback never crashes because the model was late. Without a
sound device the same callback is driven by a simulated clock that calls it
at the audio rate in real (wall) time, which is what tests and servers use.

Block boundaries: a codec with an exact streaming decoder
(`codec.stream_decoder()`, Oobleck) decodes block by block exactly as the
whole sequence would be (it holds back the decoder's reach, a few frames,
until the next block arrives; `render` flushes them). Other codecs decode
each block together with the last `overlap` latent frames of the previous
block, crossfaded (equal power) over the audio of those frames, so decoder
edge effects do not click.

Output level: every sample played, recorded or rendered passes through one
`OutputStage` (lmdm_jax/live/output_stage.py: automatic or fixed gain
and a true-peak limiter, block by block), so nothing clips; `report()["levels"]`
and each block's `session.log` entry ("levels") say how loud it was and how
much was limited. `output=None` gives the raw decoded audio (tests).

Latency accounting (control-to-sound): a control set now affects the next
block generated; that block is heard after the audio already buffered plays
out: latency ~ compute per block + buffered audio (<= buffer_blocks blocks)
+ one callback period.

Background playback (`start_simulated` / `start_sounddevice` ... `stop`)
returns at once so a caller (the `lmdm live` terminal) can change the
session's controls while it plays. The generation thread holds `lock` while
it generates a block; a caller that changes controls under the same lock
changes them between two blocks, and the change is first heard in the block
generated next (`session.log` says which).
"""
from __future__ import annotations

import threading
import time
from typing import List, Optional

import numpy as np

from lmdm_jax.codecs.base import Codec
from lmdm_jax.live.output_stage import OutputStage
from lmdm_jax.live.recording import Recorder


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
               overlap: int = 1, period: int = 1024, output="auto",
               level=None):
    """output: the OutputStage every block goes through; "auto" (a stage
    whose gain follows the music's running level), or None (raw audio).
    level: a `block_level.BlockLevel` applied to each block's latents
    before decoding, called with the CFG scale the block was generated
    at (a package's calibrated profile), or None."""
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
    if isinstance(output, str):
      if output != "auto":
        raise ValueError(f"output must be an OutputStage, 'auto' or None, "
                         f"got {output!r}")
      output = OutputStage(codec.sample_rate, codec.channels)
    elif output is not None and (output.sample_rate != codec.sample_rate or
                                 output.channels != codec.channels):
      raise ValueError(f"output stage is {output.channels} channels at "
                       f"{output.sample_rate} Hz, the codec "
                       f"{codec.channels} at {codec.sample_rate} Hz")
    self.output = output
    if level is not None and level.block != g.block:
      raise ValueError(f"block level profile has {level.block} frames, the "
                       f"stream's blocks {g.block}")
    self.level = level
    self.overlap, self.period = overlap, period
    self.block_samples = g.block * codec.hop
    # Exact block-by-block decoding where the codec offers it (no overlap).
    self._decoder = (codec.stream_decoder()
                     if hasattr(codec, "stream_decoder") else None)
    # Such a decoder's first output can exceed a block: it waits for
    # 2 * radius + 1 frames, then emits all but the last radius ones (up to
    # radius + block frames) into the still-empty ring. Blocks shorter
    # than the radius (a tiny geometry with Oobleck) need the room.
    burst = (getattr(self._decoder, "radius", 0) + g.block) * codec.hop \
        if self._decoder is not None else 0
    self.ring = RingBuffer(codec.channels,
                           max(buffer_blocks * self.block_samples, burst)
                           + period)
    self.underruns = 0
    self.callbacks = 0
    self.compute_s = []
    self._tail = None            # held-back audio of the previous overlap
    self._prev_latents = None
    self._stop = threading.Event()
    self._error: Optional[BaseException] = None
    # Held while the session generates a block; take it to change controls.
    self.lock = threading.Lock()
    self._threads: List[threading.Thread] = []
    self._clock_done = threading.Event()
    self._recorder: Optional[Recorder] = None
    self._sd_stream = None

  # -- generation -------------------------------------------------------------
  def _next_audio(self) -> np.ndarray:
    t0 = time.perf_counter()
    with self.lock:
      # This block's guidance scale (None for a session without one:
      # the level stage then uses its default profile).
      cfg = getattr(self.session, "cfg_scale", None)
      latents = self.session.next_block()[0]          # [o, C]
    if self.level is not None:
      latents = self.level(latents, cfg=cfg)
    k = self.overlap
    if self._decoder is not None:       # exact streaming decode, no overlap
      audio = self._decoder.push(latents)
    elif k and self._prev_latents is not None:
      audio = self.codec.decode(np.concatenate(
          [self._prev_latents[-k:], latents]))
      head, audio = audio[:, :k * self.codec.hop], audio[:, k * self.codec.hop:]
      # float32 throughout: a float64 ramp would promote every block.
      ramp = np.linspace(0, 0.5 * np.pi, head.shape[1], dtype=np.float32)
      joined = self._tail * np.cos(ramp) + head * np.sin(ramp)
      audio = np.concatenate([joined, audio], axis=1)
    else:
      audio = self.codec.decode(latents)
    self._prev_latents = latents
    if k and self._decoder is None:
      # Hold back the last overlap's audio to crossfade with the next block.
      cut = audio.shape[1] - k * self.codec.hop
      self._tail, audio = audio[:, cut:], audio[:, :cut]
    audio = self._out(audio)
    if self.output is not None and self.session.log:
      self.session.log[-1]["levels"] = dict(self.output.last)
    self.compute_s.append(time.perf_counter() - t0)
    return audio

  def _out(self, audio: np.ndarray) -> np.ndarray:
    return audio if self.output is None else self.output.process(audio)

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
      out = np.zeros((self.codec.channels, n), np.float32)
    if self._recorder is not None:
      self._recorder.put(out)
    return out

  @property
  def error(self) -> Optional[BaseException]:
    """What stopped the generation thread, if anything did (playback then
    goes on in silence, counting underruns, until `stop` raises it)."""
    return self._error

  def buffered_s(self) -> float:
    """Seconds of audio in the ring buffer now."""
    with self.ring.lock:
      return self.ring.size / self.codec.sample_rate

  def played(self) -> np.ndarray:
    """What the callback output, silences included, read back from the
    recording after `stop`: [channels, callbacks * period] (empty unless
    recording; 16-bit precision when recording to a WAV)."""
    if self._recorder is None:
      return np.zeros((self.codec.channels, 0), np.float32)
    return self._recorder.read()

  def _record(self, record) -> None:
    """record: False (none), True (temporary float32 file) or a WAV path."""
    if self._recorder is not None:
      self._recorder.delete()
      self._recorder = None
    if record:
      self._recorder = Recorder(None if record is True else str(record),
                                self.codec.channels, self.codec.sample_rate)

  # -- drivers ------------------------------------------------------------------
  def render(self, blocks: int, on_block=None) -> np.ndarray:
    """File out: `blocks` blocks as fast as they compute, no clock.

    -> audio [channels, blocks * o * hop]. on_block(i) is called after
    block i; per-block compute (model + decode) lands in `compute_s`.
    Each call is a complete clip (the held-back overlap is flushed), so
    calls may follow one another (a notebook rendering clip after clip);
    the stream itself continues from call to call.
    """
    return np.concatenate(list(self.iter_render(blocks, on_block)), axis=1)

  def iter_render(self, blocks: int, on_block=None):
    """`render` one piece at a time: yields each block's audio [channels,
    n] as it is made (then the held-back overlap), so a caller can write
    it out and hold no more than a block (lmdm generate)."""
    if blocks < 1:
      raise ValueError(f"blocks must be >= 1, got {blocks}")
    for i in range(blocks):
      yield self._next_audio()
      if on_block is not None:
        on_block(i)
    if self._decoder is not None:       # the frames held back
      tail = self._out(self._decoder.flush())
      self._decoder = self.codec.stream_decoder()
      yield tail
    if self._tail is not None:          # the held-back last overlap
      tail, self._tail = self._out(self._tail), None
      self._prev_latents = None         # next call: no tail to join
      yield tail

  def start(self, prebuffer_blocks: int = 1) -> None:
    """Generates `prebuffer_blocks` blocks, then starts the generation
    thread, which keeps the ring buffer full from then on. Returns at once.
    """
    if self._threads:
      raise RuntimeError("this player is already playing; stop() it first")
    if prebuffer_blocks < 0:
      raise ValueError(f"prebuffer_blocks must be >= 0, got "
                       f"{prebuffer_blocks}")
    self._stop.clear()
    self._clock_done.clear()
    for _ in range(prebuffer_blocks):
      self.ring.write(self._next_audio())
    self._spawn(self._generate)

  def _spawn(self, fn) -> None:
    thread = threading.Thread(target=fn, daemon=True)
    thread.start()
    self._threads.append(thread)

  def _clock(self, seconds: Optional[float], pace: bool = True) -> None:
    """The simulated sound card: one callback per period, paced by the
    wall clock, for `seconds` (None: until `stop`). pace=False: no wall
    clock; each period is taken as soon as it is buffered (as fast as
    compute, never an underrun while generation runs): soak tests."""
    sr = self.codec.sample_rate
    n_periods = None if seconds is None else int(seconds * sr / self.period)
    start = time.perf_counter()
    i = 0
    while (n_periods is None or i < n_periods) and not self._stop.is_set():
      if pace:
        delay = start + i * self.period / sr - time.perf_counter()
        if delay > 0:
          time.sleep(delay)
      else:
        while (self.ring.size < self.period and self._error is None
               and not self._stop.is_set()):
          time.sleep(0.0005)
      self.callback(self.period)
      i += 1
    self._clock_done.set()

  def start_simulated(self, seconds: Optional[float] = None,
                      prebuffer_blocks: int = 1, record=True,
                      pace: bool = True) -> None:
    """Background playback against the simulated sound card.

    Plays for `seconds` (None: until `stop`); `wait()` returns when they
    have played. record: the callback's output (the performance as heard,
    silences of underruns included) streamed to disk: True (a temporary
    file, `played()` after `stop`), a .wav path, or False. pace=False: the
    clock runs as fast as compute (see `_clock`).
    """
    self._record(record)
    self.start(prebuffer_blocks)
    self._spawn(lambda: self._clock(seconds, pace))

  def start_sounddevice(self, prebuffer_blocks: int = 1,
                        record=False) -> None:
    """Background playback through the default output device (PortAudio).

    Raises RuntimeError when sounddevice/PortAudio is missing (before any
    block is generated). Plays until `stop`.
    """
    try:
      import sounddevice as sd
    except (ImportError, OSError) as e:
      raise RuntimeError(
          "sounddevice/PortAudio is not available; install the `live` extra "
          "and Debian's libportaudio2, or use the simulated clock") from e

    def cb(outdata, frames, time_info, status):
      del time_info, status
      outdata[:] = self.callback(frames).T

    self._record(record)
    try:
      stream = sd.OutputStream(samplerate=self.codec.sample_rate,
                               channels=self.codec.channels,
                               blocksize=self.period, dtype="float32",
                               callback=cb)
    except sd.PortAudioError as e:
      raise RuntimeError(f"cannot open the default output device: {e}") from e
    try:
      self.start(prebuffer_blocks)
    except BaseException:
      stream.close()
      raise
    self._sd_stream = stream
    stream.start()

  def wait(self, timeout: Optional[float] = None) -> bool:
    """Waits until a `start_simulated(seconds)` run has played its seconds;
    -> whether it has (False on timeout, and always for open-ended runs)."""
    return self._clock_done.wait(timeout)

  def stop(self) -> dict:
    """Stops playback and generation; -> `report`. Re-raises an error of
    the generation thread (after playback has stopped)."""
    self._stop.set()
    if self._sd_stream is not None:
      self._sd_stream.stop()
      self._sd_stream.close()
      self._sd_stream = None
    for thread in self._threads:
      thread.join()
    self._threads = []
    if self._recorder is not None:
      self._recorder.close()              # the last periods reach the disk
    if self._error is not None:
      raise self._error
    seconds = self.callbacks * self.period / self.codec.sample_rate
    return self.report(seconds)

  def play_simulated(self, seconds: float, wav_path: Optional[str] = None,
                     prebuffer_blocks: int = 1) -> dict:
    """Drives the callback from a wall-clock-paced simulated sound card."""
    self.start_simulated(seconds, prebuffer_blocks, record=wav_path or True)
    self.wait()
    self.stop()
    return self.report(seconds)

  def play_sounddevice(self, seconds: float) -> dict:
    """Plays through the default output device (needs sounddevice)."""
    self.start_sounddevice()
    try:
      time.sleep(seconds)
    finally:
      self.stop()
    return self.report(seconds)

  def latency(self, compute_s: float) -> dict:
    """Control-to-sound latency accounting for a compute time per block.

    A control changed now is used by the next block generated; that block
    reaches the speaker after the audio already buffered (at most the ring
    buffer: buffer_blocks blocks) and one callback period.
    """
    sr = self.codec.sample_rate
    block_s = self.block_samples / sr
    buffered = (self.ring.capacity - self.period) / sr
    return {"block_s": block_s, "compute_per_block_s": compute_s,
            "buffer_s": buffered, "period_s": self.period / sr,
            "control_to_sound_latency_s": compute_s + buffered
            + self.period / sr,
            "real_time_factor": block_s / compute_s if compute_s else None}

  def report(self, seconds: float) -> dict:
    compute = float(np.median(self.compute_s)) if self.compute_s else 0.0
    out = {"seconds": seconds, "underruns": self.underruns,
           "callbacks": self.callbacks,
           "rejected_blocks": len(getattr(self.session, "rejected_blocks",
                                          ())),
           "levels": (self.output.levels() if self.output is not None
                      else None)}
    out.update(self.latency(compute))
    return out


def write_wav(path: str, audio: np.ndarray, sample_rate: int) -> None:
  """16-bit PCM WAV of audio [channels, samples] with the stdlib `wave`."""
  import wave
  pcm = (np.clip(audio, -1, 1).T * 32767).astype("<i2")
  with wave.open(path, "wb") as w:
    w.setnchannels(audio.shape[0])
    w.setsampwidth(2)
    w.setframerate(sample_rate)
    w.writeframes(pcm.tobytes())
