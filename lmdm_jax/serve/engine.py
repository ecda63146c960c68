"""The playing session behind `lmdm serve`: audio frames and controls.

`Engine` owns one `LiveSession`, its `Player` (lmdm_jax/live/player.py)
on the simulated, wall-clock-paced sound card, and the `LiveApp` of
`lmdm live` (lmdm_jax/live/commands.py) through which EVERY control
passes, from the page, OSC or MIDI alike.

Audio: each callback period ([channels, period] float32) goes to `sink`
as a frame with the index of the block its first sample belongs to (-1:
an underrun's silence, -2: paused). A page that sent a control learns the
block it applies from (the ack), and so when it hears it.

Coalescing: `submit(line)` checks the line at once (errors come back to
the sender), then files it under its key (`protocol.coalesce_key`). The
first change of a key in a block is applied at once; later ones in the same
block replace one another and the latest is applied when the next block
starts. A slider dragged at 1 kHz makes one change per block, and a flood
never holds the generation lock for more than one command at a time.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from lmdm_jax.serve import protocol
from lmdm_jax.live.commands import LiveApp
from lmdm_jax.live.player import Player

Reply = Callable[[dict], None]


class FramePlayer(Player):
  """A Player whose callback output also goes to `sink(frame, block)`,
  and which can pause (silence, nothing consumed, no underrun counted)."""

  def __init__(self, *a, **kw):
    super().__init__(*a, **kw)
    self.sink: Callable[[np.ndarray, int], None] = lambda audio, block: None
    self.paused = False
    self.ring_pos = 0           # samples consumed from the ring buffer

  def block_of(self, pos: int) -> int:
    """The block whose audio sample `pos` of the stream is: block i > 0
    starts where its crossfade with block i-1 starts, i*B - overlap*hop."""
    lead = self.overlap * self.codec.hop
    return max(0, (pos + lead) // self.block_samples)

  def callback(self, n: int) -> np.ndarray:
    if self.paused:
      out = np.zeros((self.codec.channels, n), np.float32)
      self.sink(out, -2)
      return out
    before = self.underruns
    out = super().callback(n)
    if self.underruns > before:
      block = -1
    else:
      block = self.block_of(self.ring_pos)
      self.ring_pos += n
    self.sink(out, block)
    return out


class Engine:
  """One session played for every page, OSC and MIDI source."""

  def __init__(self, session, player: FramePlayer, encoder=None,
               settings: Optional[dict] = None):
    self.session, self.player = session, player
    self.app = LiveApp(session, player, encoder)
    self.settings = dict(settings or {})
    self._lock = threading.Lock()
    self._pending: Dict[str, Tuple[str, Optional[Reply], object]] = {}
    self._applied_in_block: Dict[str, int] = {}
    self.coalesced = 0
    self.refused = 0
    self._stop = threading.Event()
    self._thread: Optional[threading.Thread] = None
    self._sources: Dict[str, Callable] = {}
    self.live_input = None

  # -- controls -------------------------------------------------------------
  def next_block(self) -> int:
    return len(self.session.recorded)

  def submit(self, line: str, reply: Optional[Reply] = None,
             tag=None) -> None:
    """Checks `line` (ProtocolError if bad, nothing changed), then applies
    it now or, if its key already changed in this block, at the next one.
    reply(dict) gets the ack or the error of applying it."""
    protocol.check_line(line)
    if line.split(None, 1)[0].lower() in ("status", "s"):
      self._apply(line, reply, tag)
      return
    key = protocol.coalesce_key(line)
    with self._lock:
      if self._applied_in_block.get(key) == self.next_block() or \
          key in self._pending:
        if key in self._pending:
          self.coalesced += 1
          old_reply, old_tag = self._pending[key][1], self._pending[key][2]
          if old_reply is not None:
            old_reply({"type": "coalesced", "id": old_tag,
                       "reason": "replaced by a later change in the same "
                       "block"})
        self._pending[key] = (line, reply, tag)
        return
      self._applied_in_block[key] = self.next_block()
    self._apply(line, reply, tag)

  def _apply(self, line: str, reply: Optional[Reply], tag) -> None:
    try:
      msg = self.app.handle(line)
    except ValueError as e:
      self.refused += 1
      if reply is not None:
        reply({"type": "error", "id": tag, "reason": str(e)})
      return
    event = self.app.events[-1]
    if reply is not None:
      reply({"type": "ack", "id": tag, "block": event.get("block"),
             "message": msg, "line": line})

  def _flush(self) -> None:
    """Applies the pending (coalesced) controls once a new block began."""
    with self._lock:
      block = self.next_block()
      due = {k: v for k, v in self._pending.items()
             if self._applied_in_block.get(k) != block}
      for k in due:
        del self._pending[k]
        self._applied_in_block[k] = block
    for line, reply, tag in due.values():
      self._apply(line, reply, tag)

  DRAWN = {  # canvas y in [0, 1] -> natural units (control/inputs.py)
      "loudness": lambda y: -60.0 + 60.0 * y,          # dB
      "brightness": lambda y: y,                       # normalised log-Hz
      "pitch": lambda y: 36.0 + 48.0 * y}              # MIDI note

  def drawable(self) -> List[str]:
    m = self.session.spec.model
    return [n for n in self.DRAWN if m.controls and n in m.control_dims]

  def _set_source(self, key: str, fn) -> None:
    """Control sources (drawn sketch, page input) merged per block; call
    under player.lock."""
    if fn is None:
      self._sources.pop(key, None)
    else:
      self._sources[key] = fn
    srcs = dict(self._sources)
    self.session.control_source = None if not srcs else (
        lambda i: {k: v for f in srcs.values() for k, v in f(i).items()})
    if not srcs:
      self.session.frame_controls = {}

  def set_sketch(self, msg: dict, reply: Reply, tag) -> None:
    """A drawn loop of sketch curves (one value per latent frame, played
    cyclically along the stream's timeline) -> the session's frame
    controls from the next block. {} clears them."""
    from lmdm_jax.model import control_inputs as inputs
    curves = protocol.sketch_curves(msg, self.drawable())
    loops = {n: inputs.pack(inputs.normalise(
        n, self.DRAWN[n](np.asarray(v, np.float32)))[:, None])
             for n, v in curves.items()}
    g = self.session.spec.geometry

    def source(i: int):
      f = np.arange(i * g.block - g.context, (i + 1) * g.block)
      return {n: a[f % a.shape[0]] for n, a in loops.items()}
    with self.player.lock:
      self._set_source("sketch", source if loops else None)
      block = self.next_block()
    what = (f"sketch {', '.join(f'{n} ({len(v)} frames)' for n, v in curves.items())}"
            if curves else "sketch cleared")
    self.app.events.append({"t_s": round(time.perf_counter() - self.app.t0,
                                         3), "command": what, "ok": True,
                            "block": block})
    reply({"type": "ack", "id": tag, "block": block, "line": what,
           "message": f"{what} from block {block}"})

  def set_input(self, kind: str, reply: Reply, tag) -> None:
    """The page's input (mic or file, pushed by `push_input`) as the
    partner (jam models) or the sketch controls, with the default
    generative delay; "off" detaches it."""
    from lmdm_jax.live import live_input, track
    from lmdm_jax.model import control_inputs as inputs
    m = self.session.spec.model
    dims = m.control_dims if m.controls else {}
    if kind not in ("partner", "sketch", "off"):
      raise protocol.ProtocolError("input 'as' must be partner, sketch or off")
    if kind == "partner" and inputs.PARTNER not in dims:
      raise protocol.ProtocolError("this model has no partner control "
                                   "(serve the jam model: --checkpoint jam)")
    if kind == "sketch":
      try:
        names = track.sketch_names(dims)
      except ValueError as e:
        raise protocol.ProtocolError(str(e)) from None
    else:
      names = [inputs.PARTNER]
    g, codec = self.session.spec.geometry, self.player.codec
    live = None
    if kind != "off":
      # The page's input starts now, not at the stream's frame 0: its
      # frame 0 is the timeline frame now heard, so the generative delay
      # is counted from there.
      delay = live_input.default_delay(g.block, self.settings.get(
          "buffer_blocks", 2)) + self.player.ring_pos // codec.hop
      live = live_input.LiveInput(codec, names, g.context, g.block, delay,
                                  channels=1)
    with self.player.lock:
      self.live_input = live
      self._set_source("input", None if live is None else live.block_window)
      block = self.next_block()
    what = "input off" if live is None else (
        f"input as {kind} ({', '.join(names)}), heard "
        f"{live_input.default_delay(g.block, self.settings.get('buffer_blocks', 2)) / codec.frame_rate:.1f} s later")
    self.app.events.append({"t_s": round(time.perf_counter() - self.app.t0,
                                         3), "command": what, "ok": True,
                            "block": block})
    reply({"type": "ack", "id": tag, "block": block, "line": what,
           "message": f"{what} from block {block}"})

  def push_input(self, data: bytes) -> None:
    audio = protocol.input_frame(data, 1)
    live = self.live_input
    if live is None:
      raise protocol.ProtocolError("no input is on: send {\"type\": "
                                   "\"input\", \"as\": ...} first")
    live.push(audio)

  def pause(self, paused: bool) -> None:
    self.player.paused = paused

  # -- running --------------------------------------------------------------
  def start(self, prebuffer_blocks: int = 1, record=False) -> None:
    self.player.start_simulated(None, prebuffer_blocks=prebuffer_blocks,
                                record=record)
    self.app.t0 = time.perf_counter()
    self._thread = threading.Thread(target=self._flusher, daemon=True)
    self._thread.start()

  def _flusher(self) -> None:
    while not self._stop.is_set():
      if self._pending:
        self._flush()
      time.sleep(0.01)

  def stop(self) -> dict:
    self._stop.set()
    if self._thread is not None:
      self._thread.join()
    return self.player.stop()

  def stats(self) -> dict:
    """The meters: buffer, underruns, compute, real-time factor, controls."""
    pl, s = self.player, self.session
    sr = pl.codec.sample_rate
    block_s = pl.block_samples / sr
    recent = pl.compute_s[-8:]
    compute = float(np.median(recent)) if recent else None
    return {"type": "stats", "block": self.next_block(),
            "played_s": pl.callbacks * pl.period / sr,
            "buffered_s": pl.buffered_s(), "underruns": pl.underruns,
            "compute_ms": None if compute is None else compute * 1e3,
            "rtf": None if not compute else block_s / compute,
            "paused": pl.paused, "coalesced": self.coalesced,
            "refused": self.refused,
            "controls": {"prompts": s.prompts, "cfg": s.cfg_scale,
                         "rescale": s.rescale, "steps": s.steps,
                         "seed": s.seed,
                         "fade_blocks": len(s._fade)},
            "error": None if pl.error is None else repr(pl.error)}

  def info(self) -> dict:
    """What the page needs to build its controls."""
    pl, s = self.player, self.session
    m = s.spec.model
    return {"type": "info", "sample_rate": pl.codec.sample_rate,
            "channels": pl.codec.channels, "period": pl.period,
            "block_samples": pl.block_samples,
            "block_frames": s.spec.geometry.block,
            "block_s": pl.block_samples / pl.codec.sample_rate,
            "steps_options": sorted(s.streams), "cfg_branch": s.spec.cfg,
            "plus_plus": s.spec.plus_plus,
            "context_frames": s.spec.geometry.context,
            "drop_frames": s.drop_frames, "paused": pl.paused,
            "controls": sorted(m.control_dims) if m.controls else [],
            "drawable": self.drawable(),
            "delay_frames": (self.settings.get("buffer_blocks", 2) + 1)
            * s.spec.geometry.block,
            "settings": self.settings}

  def control_log(self) -> dict:
    return self.app.control_log(self.settings)


def build(args, log: Callable[[str], None]) -> Engine:
  """The model package, session and player `lmdm serve` plays (the same
  set-up as `lmdm live`: every step option compiled before playing)."""
  from lmdm_jax import pretrained
  from lmdm_jax.live import block_level, output_stage
  from lmdm_jax.live.cli import parse_steps_options
  from lmdm_jax.live.latency import measure_latency
  from lmdm_jax.live.recording import LatentLog
  from lmdm_jax.live.session import LiveSession
  from lmdm_jax.streaming.state import StreamSpec

  pkg = pretrained.load(args.checkpoint)
  d = pkg.defaults
  steps = int(args.steps if args.steps is not None else d.get("steps", 8))
  options = sorted(set(parse_steps_options(args.steps_options)) | {steps})
  cfg_scale = float(args.cfg if args.cfg is not None
                    else d.get("cfg_scale", 1.0))
  encoder = pkg.text_encoder()
  spec = StreamSpec(pkg.dit, pkg.geometry, batch=1,
                    cond_tokens=pkg.cond_tokens, steps=steps,
                    sampler=d.get("sampler", "pingpong"), cfg=True)
  codec = pkg.make_codec()
  t0 = time.perf_counter()
  # The package's global conditioning (SAO: the seconds_total embedding;
  # None -> zeros) and calibrated output gain, as `lmdm live` plays it.
  global_cond = pkg.global_cond()
  session = LiveSession(pkg.params["dit"], spec, encoder.encode_one,
                        global_cond=global_cond, steps_options=options,
                        drop_frames=args.drop_frames, seed=args.seed,
                        progress=log)
  log(f"compiled steps {options} in {time.perf_counter() - t0:.1f} s")
  session.recorded = LatentLog()
  session.set_cfg(cfg_scale)
  if args.prompt:
    session.set_prompts({args.prompt: 1.0})
  player = FramePlayer(session, codec, buffer_blocks=args.buffer_blocks,
                       overlap=1, output=output_stage.for_package(pkg, codec),
                       level=block_level.for_package(pkg, codec))
  measure_latency(session, player, log)
  import os
  settings = {
      "model": os.path.abspath(pkg.path), "prompt": args.prompt,
      "steps_options": options, "buffer_blocks": args.buffer_blocks,
      "sample_rate": codec.sample_rate, "drop_frames": args.drop_frames}
  engine = Engine(session, player, encoder, settings=settings)

  def another() -> Engine:
    """A second session of the same model: the compiled programs are
    shared (streaming.session.stream_for), so nothing compiles."""
    s2 = LiveSession(session.params, spec, encoder.encode_one,
                     global_cond=global_cond, steps_options=options,
                     drop_frames=args.drop_frames, seed=args.seed)
    s2.recorded = LatentLog()
    s2.set_cfg(cfg_scale)
    if args.prompt:
      s2.set_prompts({args.prompt: 1.0})
    return Engine(s2, FramePlayer(s2, codec, buffer_blocks=args.buffer_blocks,
                                  overlap=1,
                                  output=output_stage.for_package(pkg, codec),
                                  level=block_level.for_package(pkg, codec)),
                  encoder, settings=dict(settings))
  engine.another = another
  return engine
