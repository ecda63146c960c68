"""Static model and window configuration.

Both dataclasses are frozen and hashable so they can be closed over or passed
as static arguments to jitted functions: changing one of them means a new
model (a new compilation), while everything that may change during a live
performance (prompts, CFG scale, seeds) lives in arrays.

Shape letters used across the package:
  B batch, N audio frames (latent steps), C latent channels, D model width,
  H query heads, K key/value heads, E head dim, L conditioning tokens.
"""
from __future__ import annotations

import dataclasses
import numbers
from typing import Any, Mapping, Tuple

MODES = ("outpaint", "ed", "bc")
REMAT = ("none", "layer", "layer_dots")


def _from_dict(cls, d: Mapping[str, Any], what: str):
  """Builds a config dataclass, naming unknown keys precisely."""
  names = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(d) - names)
  if unknown:
    raise ValueError(f"unknown {what} keys {unknown}; known: {sorted(names)}")
  return cls(**dict(d))


def _control_pairs(controls) -> Tuple[Tuple[str, int], ...]:
  """dict name -> dim or ((name, dim), ...) -> validated tuple of pairs."""
  items = controls.items() if isinstance(controls, Mapping) else controls
  try:
    pairs = tuple((str(n), d) for n, d in items)
  except (TypeError, ValueError) as e:
    raise ValueError(f"controls must be a dict name -> dim or (name, dim) "
                     f"pairs, got {controls!r}") from e
  names = [n for n, _ in pairs]
  if len(set(names)) != len(names):
    raise ValueError(f"control names repeat: {names}")
  for n, d in pairs:
    if not n.isidentifier():
      raise ValueError(f"control name {n!r} must be an identifier (it names "
                       f"the parameter to_control_embed_{n})")
    if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1:
      raise ValueError(f"control {n!r} needs a positive integer dim, got "
                       f"{d!r}")
  return tuple((n, int(d)) for n, d in pairs)


@dataclasses.dataclass(frozen=True)
class DiTConfig:
  """Architecture of the SAO-style diffusion transformer.

  Attributes:
    io_channels: latent channels C (64 for the Oobleck VAE).
    embed_dim: model width D.
    depth: number of transformer blocks.
    num_heads: self-attention heads H (head dim E = D / H).
    cond_token_dim: width of the cross-attention conditioning tokens
      (768 for T5-base); 0 disables cross-attention.
    project_cond_tokens: project conditioning tokens to D (SAO-Small) or keep
      their width and use fewer key/value heads (SAO 1.0, GQA-like).
    global_cond_dim: width of the global conditioning vector (the
      concatenated number embeddings); 0 for none.
    input_add_dim: width of the input-add features ([mask, masked clean
      context] = 1 + C for LMDM); 0 disables the input-add projection.
    postpend: put the global (timestep) token after the audio frames
      (LMDM) instead of before them (SAO). The token always takes RoPE
      position 0, as in stable-audio-tools.
    qk_norm: "ln" (LayerNorm over each head, SAO) or "none".
    rope_base: RoPE base (stable-audio-tools: 10000; the LMDM fork's
      RotaryEmbedding default is 1e6 - converters read `inv_freq` instead).
    ff_mult: SwiGLU hidden multiplier.
    timestep_features_dim: random Fourier features of the timestep.
    dtype: compute dtype name ("float32" or "bfloat16"); params stay float32.
    remat: rematerialisation of the transformer blocks under autodiff
      (`flax.linen.remat` around each block; parameters and outputs are
      unchanged): "none"; "layer" saves only each block's input and
      recomputes the block in the backward pass; "layer_dots" also saves
      the outputs of its dense layers (matmuls without batch dimensions:
      less recompute, more memory).
    controls: time-aligned controls, ((name, dim), ...) (a dict name -> dim
      is accepted): one bias-free projection `to_control_embed_<name>` of
      [values, mask] (dim + 1 -> D) per control, added to the frames'
      hidden states like the input-add projection (lmdm_jax/model/
      control_inputs.py). Empty (default): no controls, no extra parameters.
  """
  io_channels: int = 64
  embed_dim: int = 1024
  depth: int = 16
  num_heads: int = 8
  cond_token_dim: int = 768
  project_cond_tokens: bool = True
  global_cond_dim: int = 768
  input_add_dim: int = 65
  postpend: bool = True
  qk_norm: str = "ln"
  rope_base: float = 10000.0
  ff_mult: int = 4
  timestep_features_dim: int = 256
  dtype: str = "float32"
  remat: str = "none"
  controls: Tuple[Tuple[str, int], ...] = ()

  def __post_init__(self):
    object.__setattr__(self, "controls", _control_pairs(self.controls))
    if self.embed_dim % self.num_heads:
      raise ValueError(
          f"embed_dim ({self.embed_dim}) must be divisible by num_heads "
          f"({self.num_heads}).")
    if self.rotary_dim > self.head_dim:
      raise ValueError(
          f"head_dim {self.head_dim} is smaller than the rotary dim "
          f"{self.rotary_dim} (SAO uses max(head_dim // 2, 32)); use "
          f"head_dim >= 32.")
    if self.cond_token_dim and self.cross_dim % self.head_dim:
      raise ValueError(
          f"cross-attention width {self.cross_dim} must be a multiple of "
          f"head_dim {self.head_dim}.")
    if self.cond_token_dim and self.num_heads % self.cross_kv_heads:
      raise ValueError(
          f"num_heads {self.num_heads} must be a multiple of the "
          f"cross-attention key/value heads {self.cross_kv_heads}.")
    if self.qk_norm not in ("ln", "none"):
      raise ValueError(f"qk_norm must be 'ln' or 'none', got {self.qk_norm!r}")
    if self.dtype not in ("float32", "bfloat16"):
      raise ValueError(f"dtype must be float32 or bfloat16, got {self.dtype}")
    if self.remat not in REMAT:
      raise ValueError(f"remat must be one of {REMAT}, got {self.remat!r}")

  @property
  def head_dim(self) -> int:
    return self.embed_dim // self.num_heads

  @property
  def rotary_dim(self) -> int:
    return max(self.head_dim // 2, 32)

  @property
  def cross_dim(self) -> int:
    """Width of the embedded conditioning tokens fed to cross-attention."""
    return self.embed_dim if self.project_cond_tokens else self.cond_token_dim

  @property
  def control_dims(self) -> dict:
    """name -> dim of the controls (insertion order)."""
    return dict(self.controls)

  @property
  def cross_kv_heads(self) -> int:
    return self.cross_dim // self.head_dim

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> "DiTConfig":
    return _from_dict(cls, d, "DiT config")


@dataclasses.dataclass(frozen=True)
class Geometry:
  """Window geometry of block-wise generation, in latent frames.

  Attributes:
    mode: "outpaint" (baseline: whole window every step), "ed"
      (encoder-decoder mask, context prefilled once per block) or "bc"
      (block-causal sliding window, context encoded once ever).
    context: clean context frames s.
    block: frames generated per block o.
    window_chunks: W, the block-causal attention window in chunks of `block`
      frames (chunk q attends to chunks q-W+1..q). Used by "bc" only.
  """
  mode: str = "bc"
  context: int = 192
  block: int = 48
  window_chunks: int = 4

  def __post_init__(self):
    if self.mode not in MODES:
      raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
    if self.block <= 0:
      raise ValueError(f"block must be positive, got {self.block}")
    if self.context <= 0:
      raise ValueError(f"context must be positive, got {self.context}")
    if self.mode == "bc":
      if self.context % self.block:
        raise ValueError(
            f"bc mode needs the block size to divide the context: context "
            f"{self.context} is not a multiple of block {self.block} "
            f"(chunk boundaries must stay aligned as the window slides).")
      if self.window_chunks < 2:
        raise ValueError(
            f"bc mode needs window_chunks >= 2 (the target chunk and at "
            f"least one context chunk), got {self.window_chunks}.")
      if self.context < self.window_chunks * self.block:
        raise ValueError(
            f"bc mode needs context >= window_chunks * block = "
            f"{self.window_chunks * self.block} frames so the cache of "
            f"window_chunks - 1 chunks plus the newest chunk is always full; "
            f"got context {self.context}.")

  @property
  def window(self) -> int:
    """T = s + o frames in one training window."""
    return self.context + self.block

  @property
  def context_chunks(self) -> int:
    return self.context // self.block

  @property
  def cache_frames(self) -> int:
    """Frames of clean history whose keys/values a stream keeps per layer."""
    if self.mode == "bc":
      return (self.window_chunks - 1) * self.block
    if self.mode == "ed":
      return self.context
    return 0

  def with_mode(self, mode: str) -> "Geometry":
    return dataclasses.replace(self, mode=mode)

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> "Geometry":
    return _from_dict(cls, d, "geometry")
