"""A live session: a block stream whose controls change between any blocks.

    session = LiveSession(params, spec, encode_prompt, steps_options=(2, 4, 8))
    session.set_prompts({"slow Bach chorale": 1.0})
    latents = session.next_block()               # [B, o, C]
    session.crossfade_to({"ragtime piano": 1.0}, blocks=4)
    session.set_cfg(5.0); session.set_steps(2)
    ...
    session.save("perf.npz")
    later = LiveSession(params, spec, encode_prompt); later.load("perf.npz")

Everything that can change while playing is an array of fixed shape (mixed
prompt tokens, CFG, seed), and every step count offered is compiled when the
session starts, so nothing compiles while playing. Prompts enter through
`encode_prompt(text) -> tokens [L, cond_token_dim]`; a mix of prompts is the
weighted mean of their encodings (the paper code's prompt interpolation).

When the dominant (largest-weight) prompt changes, the session can drop the
oldest `drop_frames` context frames (zeroed in place, as the outpainting
dropout the models are trained with) and re-prime the cache on the current
context: the paper's recipe (d = 180 of 192 frames) for making a stream
follow a new prompt instead of its own past.

Every setter checks its value against the documented ranges
(lmdm_jax/live/control_ranges.py). A block that still comes out
non-finite never enters the stream (sampler.guard_block): it is replaced by
the previous block, counted in `rejected_blocks` and flagged in its log
entry ("rejected": true).
"""
from __future__ import annotations

import functools
import json
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from lmdm_jax.live import control_ranges as ranges
from lmdm_jax.streaming.sampler import Stream
from lmdm_jax.streaming.state import Controls, StreamSpec, StreamState

Prompts = Dict[str, float]


@functools.lru_cache(maxsize=32)
def stream_for(spec: StreamSpec) -> Stream:
  """One `Stream` (and so one set of compiled programs) per spec."""
  return Stream(spec)


class LiveSession:
  """Host-side controller of one stream (batch of `spec.batch` voices)."""

  def __init__(self, params, spec: StreamSpec,
               encode_prompt: Callable[[str], np.ndarray],
               global_cond: Optional[np.ndarray] = None,
               steps_options: Sequence[int] = (),
               context: Optional[np.ndarray] = None,
               drop_frames: int = 0, seed: int = 0,
               progress: Callable[[str], None] = lambda s: None):
    # On the device once (numpy parameters would be copied every block).
    self.params = jax.tree.map(jnp.asarray, params)
    self.spec = spec
    self.encode_prompt = encode_prompt
    self._cache: Dict[str, np.ndarray] = {}
    m, g = spec.model, spec.geometry
    options = sorted({ranges.check_steps(k, what="steps option")
                      for k in steps_options} | {spec.steps})
    self.streams = {k: stream_for(spec.replace(steps=k)) for k in options}
    self.steps = spec.steps
    # Priming does not depend on the step count and the state it makes
    # serves every step option, so one stream primes, whatever `steps` is
    # later: re-priming (drop_context) never compiles while playing.
    self._prime_stream = self.streams[spec.steps]
    self.drop_frames = ranges.check_drop(drop_frames, g.context,
                                         allow_zero=True,
                                         what="drop_frames")
    seed = ranges.check_seed(seed)
    if global_cond is None:
      global_cond = np.zeros((max(m.global_cond_dim, 1),), np.float32)
    self.global_cond = np.asarray(global_cond, np.float32)
    self.cfg_scale, self.rescale, self.seed = 1.0, 0.0, seed
    self.prompts: Prompts = {"": 1.0}
    self._fade: List[Prompts] = []
    self.log: List[dict] = []
    # Blocks replaced because they came out non-finite (guard_block).
    self.rejected_blocks: List[int] = []
    self.recorded: List[np.ndarray] = []
    # Time-aligned controls of the next block's window (models with
    # DiTConfig.controls): name -> [B, T, dim + 1]; absent until set.
    self.frame_controls: Dict[str, np.ndarray] = {}
    # Optional block index -> frame controls, asked before every block (a
    # control track or live input: lmdm_jax/live/track.py).
    self.control_source: Optional[Callable[[int], Dict[str,
                                                       np.ndarray]]] = None
    if context is None:
      context = np.zeros((spec.batch, g.context, m.io_channels), np.float32)
    self._check_context(context)
    t0 = time.perf_counter()
    progress(f"compiling {len(self.streams)} step options "
             f"{sorted(self.streams)} ...")
    self.state = self._prime(context)
    self._warm_up()
    progress(f"compiled in {time.perf_counter() - t0:.1f} s")

  # -- controls -------------------------------------------------------------
  def _encode(self, text: str) -> np.ndarray:
    if text not in self._cache:
      m = self.spec.model
      if text == "":
        tokens = np.zeros((self.spec.cond_tokens, m.cond_token_dim),
                          np.float32)
      else:
        tokens = np.asarray(self.encode_prompt(text), np.float32)
      want = (self.spec.cond_tokens, m.cond_token_dim)
      if tokens.shape != want:
        raise ValueError(f"encode_prompt({text!r}) returned shape "
                         f"{tokens.shape}; expected {want}")
      self._cache[text] = tokens
    return self._cache[text]

  def mixed_tokens(self, prompts: Prompts) -> np.ndarray:
    """Weighted mean of the prompts' encodings: [L, cond_token_dim]."""
    prompts = ranges.check_prompts(prompts)
    weights = np.asarray(ranges.normalised_weights(prompts.values()),
                         np.float64)
    enc = np.stack([self._encode(p) for p in prompts])
    return np.tensordot(weights, enc, axes=1).astype(np.float32)

  def set_prompts(self, prompts: Prompts) -> None:
    self.mixed_tokens(prompts)          # validate and encode now
    self._fade = []
    self._apply_prompts(dict(prompts))

  def crossfade_to(self, prompts: Prompts, blocks: int) -> None:
    """Linear weight crossfade from the current mix over `blocks` blocks."""
    blocks = ranges.check_crossfade(blocks)
    self.mixed_tokens(prompts)
    # Names at weight 0 are left out, so fades never pile up silent names.
    old = {n: w for n, w in self.prompts.items() if w > 0}
    new = {n: w for n, w in prompts.items() if w > 0}
    names = list(dict.fromkeys(list(old) + list(new)))
    if len(names) > ranges.MIX_MAX:
      raise ValueError(f"a crossfade holds the prompts of both mixes: "
                       f"{len(names)} > {ranges.MIX_MAX}; fade to fewer")
    fade = []
    for i in range(1, blocks + 1):
      a = i / blocks
      step = {n: (1 - a) * old.get(n, 0.0) + a * new.get(n, 0.0)
              for n in names}
      fade.append({n: w for n, w in step.items() if w > 0})
    self._fade = fade

  def set_frame_controls(self, controls: Dict[str, np.ndarray]) -> None:
    """Sets the time-aligned controls of the next block's window [context |
    block]: name -> packed [T, dim + 1] or [B, T, dim + 1]
    (lmdm_jax/model/control_inputs.py); names left out are absent. Stays in
    force until set again (a live host passes each block its sliding
    window). Values and masks change without recompiling."""
    from lmdm_jax.model import control_inputs
    b, t = self.spec.batch, self.spec.geometry.window
    out = {}
    for name, a in controls.items():
      a = np.asarray(a, np.float32)
      if a.ndim == 2:
        a = np.broadcast_to(a, (b,) + a.shape)
      out[name] = a
    control_inputs.check(self.spec.model.control_dims, out, b, t,
                         "frame_controls")
    self.frame_controls = out

  def set_cfg(self, scale: float, rescale: float = 0.0) -> None:
    scale = ranges.check_cfg(scale, plus_plus=self.spec.plus_plus)
    self.cfg_scale, self.rescale = scale, ranges.check_rescale(rescale)

  def set_steps(self, steps: int) -> None:
    self.steps = ranges.check_steps(steps, self.streams)

  def set_seed(self, seed: int) -> None:
    self.seed = ranges.check_seed(seed)

  def drop_context(self, frames: Optional[int] = None) -> None:
    """Zeroes the oldest `frames` context frames and re-primes the cache."""
    frames = self.drop_frames if frames is None else frames
    frames = ranges.check_drop(frames, self.spec.geometry.context,
                               allow_zero=True, what="frames")
    context = np.array(self.state.context)
    context[:, :frames] = 0.0
    # Keep the block counter: a block's noise is drawn from (seed, block),
    # and a fresh count would replay the stream's first blocks' noise.
    self.state = self._prime(context).replace(block=self.state.block,
                                              rejected=self.state.rejected)

  def _dominant(self, prompts: Prompts) -> str:
    return max(prompts.items(), key=lambda kv: kv[1])[0]

  def _apply_prompts(self, prompts: Prompts) -> None:
    changed = self._dominant(prompts) != self._dominant(self.prompts)
    self.prompts = prompts
    if changed and self.drop_frames:
      self.drop_context()

  # -- streaming ------------------------------------------------------------
  def controls(self) -> Controls:
    b = self.spec.batch
    tokens = np.broadcast_to(self.mixed_tokens(self.prompts),
                             (b,) + (self.spec.cond_tokens,
                                     self.spec.model.cond_token_dim))
    glob = np.broadcast_to(self.global_cond, (b,) + self.global_cond.shape)
    frame_controls = {}
    if self.spec.model.controls:
      from lmdm_jax.model import control_inputs
      frame_controls = control_inputs.all_absent(
          self.spec.model.control_dims, b, self.spec.geometry.window)
      frame_controls.update({n: jnp.asarray(a)
                             for n, a in self.frame_controls.items()})
    return Controls(cross_tokens=jnp.asarray(tokens),
                    global_cond=jnp.asarray(glob),
                    cfg_scale=jnp.float32(self.cfg_scale),
                    rescale=jnp.float32(self.rescale),
                    seed=jnp.int32(self.seed), frame_controls=frame_controls)

  def prime(self, context) -> None:
    """Restarts the stream from context latents [B, s, C] (e.g. real music
    encoded by the codec: a continuation), keeping prompts, CFG and seed;
    the block counter starts again at 0, as in a new session."""
    self.state = self._prime(np.asarray(context, np.float32))

  def _prime(self, context) -> StreamState:
    self._check_context(context)
    return self._prime_stream.prime(self.params, jnp.asarray(context),
                                    self.controls())

  def _warm_up(self) -> None:
    """Runs every compiled block function once on a throwaway state."""
    for k, stream in self.streams.items():
      scratch = self._prime(np.asarray(self.state.context))
      jax.block_until_ready(stream.block(self.params, scratch,
                                         self.controls()))

  def trial_block(self, steps: Optional[int] = None
                  ) -> Tuple[np.ndarray, float]:
    """One block under the current controls on a copy of the state, for
    timing: -> (latents [B, o, C], seconds). Changes nothing: no block is
    logged or recorded and pending crossfade steps stay pending."""
    steps = self.steps if steps is None else steps
    if steps not in self.streams:
      raise ValueError(f"steps {steps} was not compiled at session start; "
                       f"choose from {sorted(self.streams)}")
    scratch = jax.tree.map(jnp.copy, self.state)   # the call donates it
    controls = self.controls()
    t0 = time.perf_counter()
    _, x = self.streams[steps].block(self.params, scratch, controls)
    x = np.asarray(x)
    return x, time.perf_counter() - t0

  def _check_context(self, context) -> None:
    g, m = self.spec.geometry, self.spec.model
    want = (self.spec.batch, g.context, m.io_channels)
    if tuple(np.shape(context)) != want:
      raise ValueError(f"context has shape {tuple(np.shape(context))}; "
                       f"expected {want}")

  def next_block(self) -> np.ndarray:
    """Generates the next block under the current controls: [B, o, C]."""
    if self._fade:
      self._apply_prompts(self._fade.pop(0))
    t0 = time.perf_counter()
    if self.control_source is not None:
      self.set_frame_controls(self.control_source(len(self.recorded)))
    before = int(self.state.rejected)     # read now: the call donates it
    self.state, x = self.streams[self.steps].block(self.params, self.state,
                                                   self.controls())
    x = np.asarray(x)
    rejected = int(self.state.rejected) > before
    if rejected:
      self.rejected_blocks.append(len(self.recorded))
    self.log.append({"block": len(self.recorded), "prompts": self.prompts,
                     "cfg_scale": self.cfg_scale, "rescale": self.rescale,
                     "steps": self.steps, "seed": self.seed,
                     "rejected": rejected,
                     "compute_s": time.perf_counter() - t0})
    if self.spec.model.controls:
      self.log[-1]["frame_controls"] = sorted(self.frame_controls)
    self.recorded.append(x)
    return x

  def performance(self) -> np.ndarray:
    """All blocks so far: [B, blocks * o, C]."""
    return np.concatenate(self.recorded, axis=1)

  def write_log(self, path: str) -> None:
    with open(path, "w") as f:
      json.dump(self.log, f, indent=1)

  # -- save / load ----------------------------------------------------------
  def save(self, path: str) -> None:
    """State arrays and controls; `load` continues exactly from here."""
    meta = {"prompts": self.prompts, "fade": self._fade,
            "cfg_scale": self.cfg_scale, "rescale": self.rescale,
            "seed": self.seed, "steps": self.steps,
            "drop_frames": self.drop_frames, "blocks": len(self.recorded)}
    blob = flax.serialization.to_bytes(self.state)
    np.savez(path, state=np.frombuffer(blob, np.uint8),
             meta=np.frombuffer(json.dumps(meta).encode(), np.uint8),
             tokens=np.stack([self._encode(p) for p in self._all_prompts()]),
             names=np.frombuffer(json.dumps(self._all_prompts()).encode(),
                                 np.uint8),
             **{f"frame_control_{n}": a
                for n, a in self.frame_controls.items()})

  def _all_prompts(self) -> List[str]:
    names = list(self.prompts)
    for f in self._fade:
      names += [n for n in f if n not in names]
    return names

  def load(self, path: str) -> None:
    """Restores a `save`d session into this one (same spec and params)."""
    with np.load(path) as z:
      meta = json.loads(bytes(z["meta"]).decode())
      names = json.loads(bytes(z["names"]).decode())
      for n, t in zip(names, z["tokens"]):
        self._cache[n] = t
      saved = flax.serialization.msgpack_restore(bytes(z["state"]))
      # Sessions saved before the guard counted rejected blocks have no
      # such field: they had rejected none.
      saved.setdefault("rejected", np.zeros((), np.int32))
      self.state = flax.serialization.from_state_dict(self.state, saved)
      self.frame_controls = {k[len("frame_control_"):]: np.asarray(z[k])
                             for k in z.files
                             if k.startswith("frame_control_")}
    self.prompts = meta["prompts"]
    self._fade = meta["fade"]
    self.cfg_scale, self.rescale = meta["cfg_scale"], meta["rescale"]
    self.seed, self.steps = meta["seed"], meta["steps"]
    self.drop_frames = meta["drop_frames"]
