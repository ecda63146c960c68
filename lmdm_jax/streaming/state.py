"""Stream specification (static), per-block controls and stream state (pytrees).

`StreamSpec` fixes everything that changes the compiled program: model,
window geometry, batch, conditioning length, steps, sampler and whether an
unconditional CFG branch is computed. `Controls` holds what a performer may
change between any two blocks without recompiling. `StreamState` is all a
stream carries from block to block; its size depends only on the spec, so an
hour-long stream holds exactly as many bytes as a ten-second one.

Batch layout: with CFG the conditional and unconditional branches are
stacked on the batch axis, B* = branches * B, conditional first.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from lmdm_jax.model import control_inputs
from lmdm_jax.diffusion import flow, samplers
from lmdm_jax.model.config import DiTConfig, Geometry
from lmdm_jax.model.dit import KV, Conditioning


@dataclasses.dataclass(frozen=True)
class StreamSpec:
  """Static description of a stream (hashable: a jit static argument)."""
  model: DiTConfig
  geometry: Geometry
  batch: int = 1
  cond_tokens: int = 65
  steps: int = 8
  sampler: str = "pingpong"
  schedule: str = "logsnr"
  cfg: bool = False
  plus_plus: bool = False
  # Pad target-only calls so batch * branches * tokens >= this (0: off).
  min_query_rows: int = 64
  # Jamming: partner frames at window index >= context + this are hidden
  # (frames, relative to the block start; lmdm_jax/model/control_inputs.py).
  partner_visibility: int = 0
  # BC only: re-encode the context from its window every block (None: only
  # when a partner control is cut at t_f < 0). See `reencodes_context`.
  bc_reencode: Optional[bool] = None
  # A generated block with a latent |x| above this (or non-finite) is not
  # let into the context or cache (sampler.guard_block): no trained codec's
  # latents come near it (SAO's and the mel codec's are ~unit scale), and
  # far below it exp()-based decoders already overflow float32.
  latent_limit: float = 1e4

  def __post_init__(self):
    if self.batch < 1:
      raise ValueError(f"batch must be >= 1, got {self.batch}")
    if self.steps < 1:
      raise ValueError(f"steps must be >= 1, got {self.steps}")
    if self.sampler not in samplers.SAMPLERS:
      raise ValueError(f"sampler must be one of {samplers.SAMPLERS}, got "
                       f"{self.sampler!r}")
    if self.schedule not in flow.SCHEDULES:
      raise ValueError(f"schedule must be one of {sorted(flow.SCHEDULES)}, "
                       f"got {self.schedule!r}")
    if not self.latent_limit > 0:
      raise ValueError(f"latent_limit must be > 0, got {self.latent_limit}")
    if self.plus_plus and not self.cfg:
      raise ValueError("plus_plus (CFG++) needs cfg=True: it re-noises "
                       "around the unconditional prediction.")
    if self.model.input_add_dim and self.model.input_add_dim < (
        1 + self.model.io_channels):
      raise ValueError(
          f"input_add_dim {self.model.input_add_dim} cannot hold [mask, "
          f"context] = 1 + {self.model.io_channels} channels.")
    if control_inputs.PARTNER in self.model.control_dims:
      control_inputs.visibility_cutoff(self.geometry.context,
                                       self.geometry.block,
                                       self.partner_visibility)

  @property
  def reencodes_context(self) -> bool:
    """Whether a BC stream re-encodes its context every block.

    A BC stream encodes each chunk once, with the controls of the block in
    which it was generated, and keeps it (history beyond the window). With
    a partner cut at t_f < 0 a chunk's partner frames become visible only
    blocks after the chunk was encoded, so it would never see them. Then
    the context (minus its newest chunk, which the fused step encodes) is
    re-encoded from the block's window under the current cut, one prefill
    of s - o frames per block, and each block equals the training window's
    forward exactly (tests/streaming/test_control_stream.py).
    """
    if self.geometry.mode != "bc":
      return False
    if self.bc_reencode is not None:
      return bool(self.bc_reencode)
    return (control_inputs.PARTNER in self.model.control_dims and
            self.partner_cutoff < self.geometry.context)

  @property
  def partner_cutoff(self) -> int:
    """Window index from which partner frames are hidden."""
    g = self.geometry
    return control_inputs.visibility_cutoff(
        g.context, g.block, int(np.clip(self.partner_visibility, -g.context,
                                        g.block)))

  @property
  def branches(self) -> int:
    return 2 if self.cfg else 1

  def query_padding(self, tokens: int) -> int:
    """Padding frames that lift a call's matmul rows to `min_query_rows`.

    XLA:CPU runs [M, D] x [D, F] products with M below 64 about as slowly as
    M = 100 (measured: 49 rows 34 ms, 64 rows 19 ms for D=1024, F=8192), so a
    batch-1 denoise step of 49 tokens is faster with 15 masked padding
    tokens. On accelerators the padding falls inside one matmul tile.
    """
    rows = self.batch * self.branches * tokens
    if rows >= self.min_query_rows:
      return 0
    per_row = self.batch * self.branches
    return -(-self.min_query_rows // per_row) - tokens

  @property
  def levels(self) -> np.ndarray:
    return flow.schedule(self.schedule, self.steps)

  def replace(self, **kw) -> "StreamSpec":
    return dataclasses.replace(self, **kw)


@flax.struct.dataclass
class Controls:
  """What may change between blocks (arrays only: no recompiles).

  cross_tokens: [B, L, cond_token_dim] encoded prompt (+ number) tokens,
    e.g. a weighted mix of several prompts' encodings.
  global_cond: [B, global_cond_dim] global conditioning (seconds_total).
  cfg_scale: [] guidance weight (CFG w, or the CFG++ weight in [0, 1]).
  rescale: [] CFG rescale phi in [0, 1].
  seed: [] int32; a block's noise is a function of (seed, block index).
  frame_controls: {name: [B, T, dim + 1]} time-aligned controls (sketch
    curves, a partner's latents) packed [values, mask] over the window
    [context s | block o] of the next block (T = s + o; see
    lmdm_jax/model/control_inputs.py). Empty for a model without controls; a
    name left out is absent (changing which names are given recompiles,
    changing values or masks does not).
  """
  cross_tokens: jnp.ndarray
  global_cond: jnp.ndarray
  cfg_scale: jnp.ndarray
  rescale: jnp.ndarray
  seed: jnp.ndarray
  frame_controls: dict = flax.struct.field(default_factory=dict)


@flax.struct.dataclass
class StreamState:
  """Everything a stream carries between calls.

  context: [B, s, C] clean latents of the current window's context.
  kv: cached keys/values [depth, B*, cache_frames, H, E] (see
    `Geometry.cache_frames`): ED, the s context frames of this block; BC,
    the W-1 chunks before the newest context chunk (whose keys/values are
    written by the next block's fused first step).
  cond: embedded conditioning of the current block (batch B*).
  seed: [] int32 seed of the current block.
  step: [] int32 denoising steps taken in the current block.
  block: [] int32 blocks completed since the stream started.
  rejected: [] int32 blocks whose generated latents were non-finite (or
    beyond `StreamSpec.latent_limit`) and were replaced by the previous
    block without entering the context or cache (`sampler.guard_block`).
  frame_controls: the current block's window controls [B, T, dim + 1]
    after the partner visibility cut (empty: none given).
  """
  context: jnp.ndarray
  kv: KV
  cond: Conditioning
  seed: jnp.ndarray
  step: jnp.ndarray
  block: jnp.ndarray
  rejected: jnp.ndarray
  frame_controls: dict = flax.struct.field(default_factory=dict)


def make_controls(spec: StreamSpec, cross_tokens=None, global_cond=None,
                  cfg_scale=1.0, rescale=0.0, seed=0,
                  frame_controls=None) -> Controls:
  """Builds and validates controls; missing conditioning becomes zeros and
  every model control left out of `frame_controls` is given as absent (so
  the pytree, hence the compiled program, is the same every block)."""
  m = spec.model
  b = spec.batch
  control_inputs.check(m.control_dims, frame_controls, b,
                       spec.geometry.window, "frame_controls")
  fc = control_inputs.all_absent(m.control_dims, b, spec.geometry.window)
  fc.update({n: jnp.asarray(a, jnp.float32)
             for n, a in (frame_controls or {}).items()})
  if cross_tokens is None:
    cross_tokens = jnp.zeros((b, spec.cond_tokens, max(m.cond_token_dim, 1)))
  if global_cond is None:
    global_cond = jnp.zeros((b, max(m.global_cond_dim, 1)))
  c = Controls(cross_tokens=jnp.asarray(cross_tokens, jnp.float32),
               global_cond=jnp.asarray(global_cond, jnp.float32),
               cfg_scale=jnp.asarray(cfg_scale, jnp.float32),
               rescale=jnp.asarray(rescale, jnp.float32),
               seed=jnp.asarray(seed, jnp.int32), frame_controls=fc)
  check_controls(spec, c)
  return c


def check_controls(spec: StreamSpec, c: Controls) -> None:
  """Raises ValueError naming the expected shape of any wrong control."""
  m = spec.model
  want = {
      "cross_tokens": (spec.batch, spec.cond_tokens, max(m.cond_token_dim, 1)),
      "global_cond": (spec.batch, max(m.global_cond_dim, 1)),
      "cfg_scale": (), "rescale": (), "seed": (),
  }
  for name, shape in want.items():
    got = tuple(np.shape(getattr(c, name)))
    if got != shape:
      raise ValueError(f"controls.{name} has shape {got}; expected {shape} "
                       f"[batch={spec.batch}, tokens={spec.cond_tokens}].")
  control_inputs.check(m.control_dims, c.frame_controls, spec.batch,
                       spec.geometry.window, "controls.frame_controls")


def check_latents(spec: StreamSpec, x, frames: int, what: str) -> None:
  want = (spec.batch, frames, spec.model.io_channels)
  if tuple(np.shape(x)) != want:
    raise ValueError(f"{what} has shape {tuple(np.shape(x))}; expected "
                     f"{want} [batch, frames, latent channels].")


def state_bytes(state: StreamState) -> int:
  return int(sum(np.prod(a.shape) * a.dtype.itemsize
                 for a in jax.tree.leaves(state)))


def known_features(spec: StreamSpec, latents) -> jnp.ndarray:
  """Input-add features [mask=1, latents, zero pad] of clean frames."""
  return control_inputs.known_features(latents, spec.model.input_add_dim)


def unknown_features(spec: StreamSpec, frames: int, batch: int):
  """Input-add features of frames being generated: all zeros."""
  return jnp.zeros((batch, frames, spec.model.input_add_dim), jnp.float32)


def tile_branches(spec: StreamSpec, x):
  return jnp.concatenate([x] * spec.branches, axis=0) if spec.cfg else x


def empty_kv(spec: StreamSpec, dtype=jnp.float32) -> Optional[KV]:
  m, g = spec.model, spec.geometry
  shape = (m.depth, spec.batch * spec.branches, g.cache_frames, m.num_heads,
           m.head_dim)
  return KV(jnp.zeros(shape, dtype), jnp.zeros(shape, dtype))
