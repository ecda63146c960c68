"""SAO-compatible diffusion transformer with explicit key/value prefixes.

Module and parameter names mirror stable-audio-tools' `DiffusionTransformer`
and `ContinuousTransformer` (`to_timestep_embed_0` for
`to_timestep_embed.0`, `transformer/layers_3/self_attn/to_qkv` for
`transformer.layers.3.self_attn.to_qkv`, ...) so a checkpoint converts key by
key (Dense kernels are the transposed torch weights).

Data flow of one forward over Nq query tokens:

  x [B,Nq,C] -> preprocess_conv(x) + x -> * router -> project_in -> * router
    + to_input_add_embed([mask, masked clean context])
    + sum_c to_control_embed_c([values_c * mask_c, mask_c])    -> h [B,Nq,D]
  [h ; global token (timestep embed + global embed)]            (Nq + 1 tokens)
  -> depth x {self-attn over [prefix keys ; own keys] (RoPE on read),
              cross-attn to conditioning tokens, SwiGLU}
  -> drop global token -> project_out -> postprocess_conv(y) + y  -> [B,Nq,C]

Every layer also returns the normalised, unrotated keys and the values of the
audio tokens it processed, which is what the streaming caches store. A
`prefix` of cached keys/values from earlier calls is attended to but not
recomputed: the whole streaming machinery (ED prefill, BC fused step) is this
one forward with different prefixes, positions and masks.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lmdm_jax.model import control_inputs
from lmdm_jax.model.config import DiTConfig
from lmdm_jax.model.rope import RopeTable, apply_rope, rope_table

# torch.nn.Linear's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
torch_linear_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in",
                                                     "uniform")
zeros = nn.initializers.zeros

# DiTConfig.remat -> checkpoint policy of each transformer block.
_REMAT_POLICIES = {
    "layer": jax.checkpoint_policies.nothing_saveable,
    "layer_dots": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


class KV(NamedTuple):
  """Per-layer keys (normalised, unrotated) and values, stacked on layers.

  k, v: [depth, B, N, K, E].
  """
  k: jnp.ndarray
  v: jnp.ndarray


class Conditioning(NamedTuple):
  """Embedded conditioning shared by all tokens of a call.

  cross_k, cross_v: [depth, B, L, Kx, E] cross-attention keys/values.
  global_embed: [B, D] projected global conditioning, or None.
  """
  cross_k: Optional[jnp.ndarray]
  cross_v: Optional[jnp.ndarray]
  global_embed: Optional[jnp.ndarray]


def _dense(features, name, use_bias=False, init=torch_linear_init,
           dtype=jnp.float32):
  return nn.Dense(features, use_bias=use_bias, kernel_init=init,
                  bias_init=zeros, name=name, dtype=dtype,
                  param_dtype=jnp.float32)


class LayerNorm(nn.Module):
  """SAO's LayerNorm: learned `gamma`, fixed zero bias, eps 1e-5."""
  eps: float = 1e-5

  @nn.compact
  def __call__(self, x):
    gamma = self.param("gamma", nn.initializers.ones, (x.shape[-1],))
    x32 = x.astype(jnp.float32)
    mean = x32.mean(-1, keepdims=True)
    var = jnp.square(x32 - mean).mean(-1, keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(var + self.eps) * gamma
    return y.astype(x.dtype)


class HeadNorm(nn.Module):
  """torch.nn.LayerNorm(head_dim, eps=1e-6) with weight and bias."""

  @nn.compact
  def __call__(self, x):
    return nn.LayerNorm(epsilon=1e-6, name="norm", dtype=jnp.float32,
                        param_dtype=jnp.float32)(x).astype(x.dtype)


def attend(q, k, v, mask=None):
  """Softmax attention. q [B,Nq,H,E], k/v [B,Nk,K,E] (K divides H).

  Key/value heads are repeated to the query heads the way stable-audio-tools
  does (`repeat_interleave`), mask is [Nq, Nk] bool or None.
  """
  h, kh = q.shape[2], k.shape[2]
  if h != kh:
    k = jnp.repeat(k, h // kh, axis=2)
    v = jnp.repeat(v, h // kh, axis=2)
  scale = 1.0 / math.sqrt(q.shape[-1])
  logits = jnp.einsum("bqhe,bkhe->bhqk", q, k,
                      preferred_element_type=jnp.float32) * scale
  if mask is not None:
    logits = jnp.where(jnp.asarray(mask)[None, None], logits,
                       jnp.finfo(jnp.float32).min)
  probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  return jnp.einsum("bhqk,bkhe->bqhe", probs, v)


class SelfAttention(nn.Module):
  config: DiTConfig

  def setup(self):
    c, dt = self.config, jnp.dtype(self.config.dtype)
    self.to_qkv = _dense(3 * c.embed_dim, "to_qkv", dtype=dt)
    self.to_out = _dense(c.embed_dim, "to_out", init=zeros, dtype=dt)
    if c.qk_norm == "ln":
      self.q_norm = HeadNorm()
      self.k_norm = HeadNorm()

  def __call__(self, x, rope_q: RopeTable, rope_k: RopeTable,
               prefix_k=None, prefix_v=None, mask=None):
    """x [B,Nq,D]; prefix_k/v [B,P,H,E]; rope_k covers P + Nq keys.

    Returns (out [B,Nq,D], k_new [B,Nq,H,E] normalised unrotated, v_new).
    """
    c = self.config
    b, n, _ = x.shape
    q, k, v = jnp.split(self.to_qkv(x), 3, axis=-1)
    q, k, v = (a.reshape(b, n, c.num_heads, c.head_dim) for a in (q, k, v))
    if c.qk_norm == "ln":
      q, k = self.q_norm(q), self.k_norm(k)
    k_all, v_all = k, v
    if prefix_k is not None:
      k_all = jnp.concatenate([prefix_k.astype(k.dtype), k], axis=1)
      v_all = jnp.concatenate([prefix_v.astype(v.dtype), v], axis=1)
    out = attend(apply_rope(q, rope_q), apply_rope(k_all, rope_k), v_all,
                 mask)
    return self.to_out(out.reshape(b, n, c.embed_dim)), k, v


class CrossAttention(nn.Module):
  config: DiTConfig

  def setup(self):
    c, dt = self.config, jnp.dtype(self.config.dtype)
    self.to_q = _dense(c.embed_dim, "to_q", dtype=dt)
    self.to_kv = _dense(2 * c.cross_dim, "to_kv", dtype=dt)
    self.to_out = _dense(c.embed_dim, "to_out", init=zeros, dtype=dt)
    if c.qk_norm == "ln":
      self.q_norm = HeadNorm()
      self.k_norm = HeadNorm()

  def keys_values(self, context):
    """context [B,L,Dx] -> k, v [B,L,Kx,E] (k normalised)."""
    c = self.config
    b, l, _ = context.shape
    k, v = jnp.split(self.to_kv(context), 2, axis=-1)
    k = k.reshape(b, l, c.cross_kv_heads, c.head_dim)
    v = v.reshape(b, l, c.cross_kv_heads, c.head_dim)
    if c.qk_norm == "ln":
      k = self.k_norm(k)
    return k, v

  def __call__(self, x, k, v):
    c = self.config
    b, n, _ = x.shape
    q = self.to_q(x).reshape(b, n, c.num_heads, c.head_dim)
    if c.qk_norm == "ln":
      q = self.q_norm(q)
    out = attend(q, k, v)
    return self.to_out(out.reshape(b, n, c.embed_dim))


class FeedForward(nn.Module):
  """SwiGLU: `ff.ff.0.proj` (D -> 2*mult*D) and `ff.ff.2` (mult*D -> D)."""
  config: DiTConfig

  @nn.compact
  def __call__(self, x):
    c, dt = self.config, jnp.dtype(self.config.dtype)
    inner = c.embed_dim * c.ff_mult
    h, gate = jnp.split(_dense(2 * inner, "proj", True, dtype=dt)(x), 2,
                        axis=-1)
    return _dense(c.embed_dim, "out", True, init=zeros, dtype=dt)(
        h * nn.silu(gate))


class TransformerBlock(nn.Module):
  config: DiTConfig

  def setup(self):
    c = self.config
    self.pre_norm = LayerNorm()
    self.self_attn = SelfAttention(c)
    if c.cond_token_dim:
      self.cross_attend_norm = LayerNorm()
      self.cross_attn = CrossAttention(c)
    self.ff_norm = LayerNorm()
    self.ff = FeedForward(c)

  def cross_keys_values(self, context):
    return self.cross_attn.keys_values(context)

  def __call__(self, x, rope_q, rope_k, cross_k=None, cross_v=None,
               prefix_k=None, prefix_v=None, mask=None):
    a, k, v = self.self_attn(self.pre_norm(x), rope_q, rope_k, prefix_k,
                             prefix_v, mask)
    x = x + a
    if self.config.cond_token_dim and cross_k is not None:
      x = x + self.cross_attn(self.cross_attend_norm(x), cross_k, cross_v)
    x = x + self.ff(self.ff_norm(x))
    return x, k, v


class ContinuousTransformer(nn.Module):
  config: DiTConfig

  def setup(self):
    c, dt = self.config, jnp.dtype(self.config.dtype)
    self.project_in = _dense(c.embed_dim, "project_in", dtype=dt)
    self.project_out = _dense(c.io_channels, "project_out", dtype=dt)
    block = TransformerBlock
    if c.remat != "none":
      block = nn.remat(TransformerBlock, policy=_REMAT_POLICIES[c.remat])
    self.layers = [block(c, name=f"layers_{i}") for i in range(c.depth)]

  def cross_keys_values(self, context):
    kvs = [layer.cross_keys_values(context) for layer in self.layers]
    return (jnp.stack([k for k, _ in kvs]), jnp.stack([v for _, v in kvs]))

  def __call__(self, h, n_audio: int, rope_q, rope_k, cond: Conditioning,
               prefix: Optional[KV] = None, mask=None,
               exit_layer: Optional[int] = None):
    """h [B,Nq,D] -> (h, KV of the first n_audio tokens).

    The tokens after the first n_audio (the global token) are processed but
    their keys/values are never cached.
    """
    ks, vs = [], []
    for i, layer in enumerate(self.layers):
      h, k, v = layer(
          h, rope_q, rope_k,
          None if cond.cross_k is None else cond.cross_k[i],
          None if cond.cross_v is None else cond.cross_v[i],
          None if prefix is None else prefix.k[i],
          None if prefix is None else prefix.v[i], mask)
      ks.append(k[:, :n_audio])
      vs.append(v[:, :n_audio])
      if exit_layer is not None and i == exit_layer:
        break
    return h, KV(jnp.stack(ks), jnp.stack(vs))


class FourierFeatures(nn.Module):
  """`timestep_features`: [cos, sin](2 pi t W), W [out/2, 1] ~ N(0, 1)."""
  out_features: int

  @nn.compact
  def __call__(self, t):
    w = self.param("weight", nn.initializers.normal(1.0),
                   (self.out_features // 2, 1))
    f = 2 * math.pi * t[:, None].astype(jnp.float32) @ w.T
    return jnp.concatenate([jnp.cos(f), jnp.sin(f)], axis=-1)


class DiT(nn.Module):
  """The diffusion transformer. See the module docstring for the data flow."""
  config: DiTConfig

  def setup(self):
    c, dt = self.config, jnp.dtype(self.config.dtype)
    self.timestep_features = FourierFeatures(c.timestep_features_dim)
    self.to_timestep_embed_0 = _dense(c.embed_dim, "to_timestep_embed_0",
                                      True, dtype=dt)
    self.to_timestep_embed_2 = _dense(c.embed_dim, "to_timestep_embed_2",
                                      True, dtype=dt)
    if c.cond_token_dim:
      self.to_cond_embed_0 = _dense(c.cross_dim, "to_cond_embed_0", dtype=dt)
      self.to_cond_embed_2 = _dense(c.cross_dim, "to_cond_embed_2", dtype=dt)
    if c.global_cond_dim:
      self.to_global_embed_0 = _dense(c.embed_dim, "to_global_embed_0",
                                      dtype=dt)
      self.to_global_embed_2 = _dense(c.embed_dim, "to_global_embed_2",
                                      dtype=dt)
    if c.input_add_dim:
      self.to_input_add_embed = _dense(c.embed_dim, "to_input_add_embed",
                                       dtype=dt)
    # Bias-free, so an absent control (values and mask 0) adds exactly 0.
    self.control_embeds = {
        n: _dense(c.embed_dim, f"to_control_embed_{n}", init=zeros,
                  dtype=dt)
        for n, _ in c.controls}
    self.preprocess_conv = _dense(c.io_channels, "preprocess_conv",
                                  init=zeros, dtype=dt)
    self.postprocess_conv = _dense(c.io_channels, "postprocess_conv",
                                   init=zeros, dtype=dt)
    self.transformer = ContinuousTransformer(c)

  # -- conditioning (once per block) ------------------------------------
  def condition(self, cross_tokens=None, global_cond=None) -> Conditioning:
    """cross_tokens [B,L,cond_token_dim], global_cond [B,global_cond_dim]."""
    c = self.config
    cross_k = cross_v = global_embed = None
    if c.cond_token_dim:
      if cross_tokens is None:
        raise ValueError("this model cross-attends: pass cross_tokens "
                         f"[batch, tokens, {c.cond_token_dim}]")
      ctx = self.to_cond_embed_2(nn.silu(self.to_cond_embed_0(cross_tokens)))
      cross_k, cross_v = self.transformer.cross_keys_values(ctx)
    if c.global_cond_dim:
      if global_cond is None:
        raise ValueError("this model has a global condition: pass "
                         f"global_cond [batch, {c.global_cond_dim}]")
      global_embed = self.to_global_embed_2(
          nn.silu(self.to_global_embed_0(global_cond)))
    return Conditioning(cross_k, cross_v, global_embed)

  # -- token embedding ----------------------------------------------------
  def embed_frames(self, x, input_add=None, router=None, controls=None):
    """x [B,N,C] noisy latents, input_add [B,N,A], router [N] or [B,N],
    controls {name: [B,N,dim+1]} packed [values, mask] (lmdm_jax/model/
    control_inputs.py; a missing name, or None, is absent on every frame)."""
    c = self.config
    x = x.astype(jnp.dtype(c.dtype))
    x = self.preprocess_conv(x) + x
    if router is not None:
      r = jnp.asarray(router, x.dtype)
      r = r[None, :, None] if r.ndim == 1 else r[..., None]
      x = x * r
    h = self.transformer.project_in(x)
    if router is not None:
      h = h * r
    if c.input_add_dim:
      if input_add is None:
        raise ValueError("this model has an input-add projection: pass "
                         f"input_add [batch, frames, {c.input_add_dim}]")
      h = h + self.to_input_add_embed(input_add.astype(h.dtype))
    if controls:
      h = h + self.control_embed(controls, x.shape[0], x.shape[1], h.dtype)
    return h

  def control_embed(self, controls, batch: int, frames: int, dtype):
    """Sum of the per-control projections of [values * mask, mask]."""
    c = self.config
    control_inputs.check(c.control_dims, controls, batch, frames)
    out = None
    for name, _ in c.controls:       # config order: a fixed sum order
      if name not in controls:
        continue
      a = jnp.asarray(controls[name], jnp.float32)
      mask = a[..., -1:]
      a = jnp.concatenate([a[..., :-1] * mask, mask], axis=-1)
      e = self.control_embeds[name](a.astype(dtype))
      out = e if out is None else out + e
    return jnp.zeros((batch, frames, c.embed_dim), dtype) if out is None \
        else out

  def global_token(self, t, global_embed=None):
    """t [B] -> [B,1,D]: timestep embedding plus the global embedding."""
    e = self.to_timestep_embed_2(
        nn.silu(self.to_timestep_embed_0(self.timestep_features(t))))
    if global_embed is not None:
      e = e + global_embed
    return e[:, None, :]

  def unembed(self, h):
    y = self.transformer.project_out(h)
    return (self.postprocess_conv(y) + y).astype(jnp.float32)

  # -- forwards -----------------------------------------------------------
  def tokens(self, x, t, cond: Conditioning, rope_q: RopeTable,
             rope_k: RopeTable, input_add=None, router=None,
             prefix: Optional[KV] = None, mask=None,
             exit_layer: Optional[int] = None, controls=None):
    """Forward over the audio frames in `x` plus the global token.

    Args:
      x: [B,Nq,C] noisy latents of the query frames.
      t: [B] noise levels.
      cond: from `condition`.
      rope_q: table for the Nq frames then the global token (Nq + 1 rows).
      rope_k: table for prefix keys then the Nq + 1 query tokens.
      input_add, router, controls: see `embed_frames`.
      prefix: cached keys/values [depth,B,P,H,E] attended before own keys.
      mask: [Nq+1, P+Nq+1] bool or None.
      exit_layer: stop after this layer and return its hidden states.

    Returns:
      (out [B,Nq,C] float32 velocity, KV of the Nq frames), or the hidden
      states [B,Nq,D] of `exit_layer` and the KV.
    """
    h = self.embed_frames(x, input_add, router, controls)
    h = jnp.concatenate(
        [h, self.global_token(t, cond.global_embed).astype(h.dtype)], axis=1)
    h, kv = self.transformer(h, x.shape[1], rope_q, rope_k, cond, prefix,
                             mask, exit_layer)
    if exit_layer is not None:
      return h[:, :-1], kv
    return self.unembed(h[:, :-1]), kv

  def frames_only(self, x, cond: Conditioning, rope_q: RopeTable,
                  rope_k: RopeTable, input_add=None, router=None,
                  prefix: Optional[KV] = None, mask=None, controls=None):
    """Forward over clean context frames with no global token.

    Used to fill caches: context queries never attend to the global token
    (ED and BC masks), so its presence would change nothing. Returns the KV.
    """
    h = self.embed_frames(x, input_add, router, controls)
    _, kv = self.transformer(h, x.shape[1], rope_q, rope_k, cond, prefix,
                             mask)
    return kv

  def __call__(self, x, t, cross_tokens=None, global_cond=None,
               input_add=None, router=None, mask=None, positions=None,
               controls=None):
    """Full-window forward (training, init, reference). x [B,N,C] -> v.

    positions: [N] integer RoPE positions of the frames (default 1..N); the
    global token takes position 0. controls: {name: [B,N,dim+1]} (see
    `embed_frames`).
    """
    n = x.shape[1]
    pos = np.arange(1, n + 1) if positions is None else np.asarray(positions)
    table = rope_table(np.concatenate([pos, [0]]), self.config.rotary_dim,
                       self.config.rope_base)
    cond = self.condition(cross_tokens, global_cond)
    out, _ = self.tokens(x, t, cond, table, table, input_add, router, None,
                         mask, controls=controls)
    return out

