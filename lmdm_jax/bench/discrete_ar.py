"""A Magenta-RealTime-v1-shaped discrete-AR live music model (cost baseline).

Encoder-decoder over codec tokens, as in Magenta RT v1 (peers.md 1a):

  encoder   bidirectional, over the context's coarse RVQ tokens
            (context_frames x context_levels, e.g. 10 s x 25 Hz x 4 = 1000)
            plus `style_tokens` style tokens                 once per chunk
  temporal  causal decoder, one token per frame (the sum of the previous
            frame's level embeddings), cross-attends to the encoder, KV
            cache over the chunk                          chunk_frames calls
  depth     small causal decoder over the RVQ levels of one frame, KV
            cache over levels                     chunk_frames x levels calls

so a chunk costs O(E_{1:s} + sum_t D_t). Weights are random: this model
exists to measure cost, which does not depend on them. Positions use RoPE
(Magenta RT uses T5 relative bias; the cost difference is negligible).

Shape letters: B batch, F frames, V levels, D width, H heads, E head dim.
"""
from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from lmdm_jax.model.dit import attend, torch_linear_init
from lmdm_jax.model.rope import apply_rope, rope_table


@dataclasses.dataclass(frozen=True)
class DiscreteARConfig:
  """Defaults: Magenta RT v1 `large` (~800M incl. embeddings)."""
  width: int = 1024
  heads: int = 16
  mlp: int = 2816
  encoder_layers: int = 24
  temporal_layers: int = 20
  depth_layers: int = 4
  depth_width: int = 1024
  vocab: int = 1024
  context_levels: int = 4
  levels: int = 16
  style_tokens: int = 6
  frame_rate: float = 25.0
  context_frames: int = 250
  chunk_frames: int = 50

  def __post_init__(self):
    for name in ("width", "depth_width"):
      if getattr(self, name) % self.heads:
        raise ValueError(f"{name} must be divisible by heads")

  @property
  def encoder_tokens(self) -> int:
    return self.context_frames * self.context_levels + self.style_tokens

  def scaled_to(self, n_params: int) -> "DiscreteARConfig":
    """Same shape with encoder and temporal depth scaled to ~n_params."""
    def n(enc, tmp):
      return count_params(dataclasses.replace(self, encoder_layers=enc,
                                              temporal_layers=tmp))
    one = n(1, 1)
    per_enc, per_tmp = n(2, 1) - one, n(1, 2) - one
    fixed = one - per_enc - per_tmp
    ratio = self.encoder_layers / max(self.encoder_layers +
                                      self.temporal_layers, 1)
    total = max(n_params - fixed, 0)
    # Keep the encoder:temporal layer ratio of the original configuration.
    unit = ratio * per_enc + (1 - ratio) * per_tmp
    layers = max(int(round(total / unit)), 2)
    enc = max(int(round(layers * ratio)), 1)
    return dataclasses.replace(self, encoder_layers=enc,
                               temporal_layers=max(layers - enc, 1))


def _dense(features, name, use_bias=False):
  return nn.Dense(features, use_bias=use_bias, kernel_init=torch_linear_init,
                  name=name)


class _MLP(nn.Module):
  """T5 v1.1 gated-GELU feed-forward."""
  hidden: int

  @nn.compact
  def __call__(self, x):
    h = nn.gelu(_dense(self.hidden, "wi_0")(x)) * _dense(self.hidden,
                                                          "wi_1")(x)
    return _dense(x.shape[-1], "wo")(h)


class _Attention(nn.Module):
  heads: int

  @nn.compact
  def __call__(self, x, kv_source=None, rope_q=None, rope_k=None,
               cache=None, mask=None):
    """x [B,N,D]; cache (k [B,S,H,E], v, index) writes N keys at index.

    Cached keys are stored rotated: a decoder's positions only grow within
    one chunk (or one frame's levels), so nothing needs re-rotating.
    """
    b, n, d = x.shape
    e = d // self.heads
    q = _dense(d, "q")(x).reshape(b, n, self.heads, e)
    src = x if kv_source is None else kv_source
    k = _dense(d, "k")(src).reshape(b, src.shape[1], self.heads, e)
    v = _dense(d, "v")(src).reshape(b, src.shape[1], self.heads, e)
    if rope_q is not None:
      q, k = apply_rope(q, rope_q), apply_rope(k, rope_k)
    new_cache = None
    if cache is not None:
      ck, cv, index = cache
      ck = jax.lax.dynamic_update_slice(ck, k.astype(ck.dtype),
                                        (0, index, 0, 0))
      cv = jax.lax.dynamic_update_slice(cv, v.astype(cv.dtype),
                                        (0, index, 0, 0))
      k, v, new_cache = ck, cv, (ck, cv)
    out = attend(q, k, v, mask)
    return _dense(d, "o")(out.reshape(b, n, d)), new_cache


class _EncoderLayer(nn.Module):
  heads: int
  mlp: int

  @nn.compact
  def __call__(self, x, rope):
    a, _ = _Attention(self.heads, name="attn")(nn.RMSNorm(name="ln_1")(x),
                                               rope_q=rope, rope_k=rope)
    x = x + a
    return x + _MLP(self.mlp, name="mlp")(nn.RMSNorm(name="ln_2")(x))


class _DecoderLayer(nn.Module):
  heads: int
  mlp: int
  cross: bool

  @nn.compact
  def __call__(self, x, rope_q, rope_k, cache, mask, memory=None):
    a, cache = _Attention(self.heads, name="self_attn")(
        nn.RMSNorm(name="ln_1")(x), rope_q=rope_q, rope_k=rope_k,
        cache=cache, mask=mask)
    x = x + a
    if self.cross:
      c, _ = _Attention(self.heads, name="cross_attn")(
          nn.RMSNorm(name="ln_2")(x), kv_source=memory)
      x = x + c
    return x + _MLP(self.mlp, name="mlp")(nn.RMSNorm(name="ln_3")(x)), cache


class DiscreteAR(nn.Module):
  config: DiscreteARConfig

  def setup(self):
    c = self.config
    self.ctx_embed = nn.Embed(c.context_levels * c.vocab + c.vocab, c.width)
    self.frame_embed = nn.Embed(c.levels * c.vocab, c.width)
    self.depth_embed = nn.Embed(c.levels * c.vocab, c.depth_width)
    self.encoder = [_EncoderLayer(c.heads, c.mlp, name=f"encoder_{i}")
                    for i in range(c.encoder_layers)]
    self.temporal = [_DecoderLayer(c.heads, c.mlp, True, name=f"temporal_{i}")
                     for i in range(c.temporal_layers)]
    self.to_depth = _dense(c.depth_width, "to_depth")
    self.depth = [_DecoderLayer(c.heads, c.mlp, False, name=f"depth_{i}")
                  for i in range(c.depth_layers)]
    self.enc_norm = nn.RMSNorm()
    self.tmp_norm = nn.RMSNorm()
    self.logits = _dense(c.vocab, "logits")

  def _rope(self, positions, width):
    return rope_table(np.asarray(positions), width // self.config.heads)

  def encode(self, ctx_tokens, style_tokens):
    """ctx_tokens [B,F,Vc] ints, style [B,S] ints -> memory [B,N,D]."""
    c = self.config
    offsets = jnp.arange(c.context_levels) * c.vocab
    x = self.ctx_embed(ctx_tokens + offsets).reshape(
        ctx_tokens.shape[0], -1, c.width)
    s = self.ctx_embed(style_tokens + c.context_levels * c.vocab)
    x = jnp.concatenate([s, x], axis=1)
    rope = self._rope(np.arange(x.shape[1]), c.width)
    for layer in self.encoder:
      x = layer(x, rope)
    return self.enc_norm(x)

  def _decode_one(self, layers, x, index, length, width, cache,
                  memory=None):
    """One token x [B,1,D] at position `index` through causal layers whose
    caches (k, v) [layers, B, length, H, E] hold the earlier positions."""
    table = self._rope(np.arange(length), width)
    rope = jax.tree.map(
        lambda a: jax.lax.dynamic_slice_in_dim(a, index, 1), table)
    mask = (jnp.arange(length) <= index)[None, :]
    ks, vs = [], []
    for i, layer in enumerate(layers):
      x, (k, v) = layer(x, rope, rope, (cache[0][i], cache[1][i], index),
                        mask, memory)
      ks.append(k)
      vs.append(v)
    return x, (jnp.stack(ks), jnp.stack(vs))

  def temporal_step(self, prev_frame, index, cache, memory):
    """One frame: prev_frame [B,V] ints (previous frame's tokens).

    cache: (k, v) [layers, B, F, H, E] over the chunk; index: frame in chunk.
    Returns (hidden [B,D], cache).
    """
    c = self.config
    x = self.frame_embed(prev_frame + jnp.arange(c.levels) * c.vocab)
    x = x.sum(axis=1, keepdims=True)
    x, cache = self._decode_one(self.temporal, x, index, c.chunk_frames,
                                c.width, cache, memory)
    return self.tmp_norm(x)[:, 0], cache

  def depth_step(self, h, token, level, cache):
    """One RVQ level: h [B,D] frame context (used at level 0), token [B]
    previous level's token. Returns (logits [B,vocab], cache)."""
    c = self.config
    prev = self.depth_embed(token + jnp.maximum(level - 1, 0) * c.vocab)
    x = jnp.where(level == 0, self.to_depth(h), prev)[:, None]
    x, cache = self._decode_one(self.depth, x, level, c.levels,
                                c.depth_width, cache)
    return self.logits(x[:, 0]), cache

  def __call__(self, ctx_tokens, style_tokens):
    """Init helper: touches every parameter once."""
    c = self.config
    b = ctx_tokens.shape[0]
    memory = self.encode(ctx_tokens, style_tokens)
    e = c.width // c.heads
    cache = (jnp.zeros((c.temporal_layers, b, c.chunk_frames, c.heads, e)),) * 2
    h, _ = self.temporal_step(jnp.zeros((b, c.levels), jnp.int32), 0, cache,
                              memory)
    de = c.depth_width // c.heads
    dcache = (jnp.zeros((c.depth_layers, b, c.levels, c.heads, de)),) * 2
    logits, _ = self.depth_step(h, jnp.zeros((b,), jnp.int32), 1, dcache)
    logits0, _ = self.depth_step(h, jnp.zeros((b,), jnp.int32), 0, dcache)
    return logits + logits0


def init_params(config: DiscreteARConfig, key, batch: int = 1):
  ctx = jnp.zeros((batch, config.context_frames, config.context_levels),
                  jnp.int32)
  style = jnp.zeros((batch, config.style_tokens), jnp.int32)
  return DiscreteAR(config).init(key, ctx, style)["params"]


def count_params(config: DiscreteARConfig) -> int:
  shapes = jax.eval_shape(lambda: init_params(config, jax.random.PRNGKey(0)))
  return int(sum(np.prod(a.shape) for a in jax.tree.leaves(shapes)))


def _empty_caches(c: DiscreteARConfig, batch: int):
  e, de = c.width // c.heads, c.depth_width // c.heads
  t = jnp.zeros((c.temporal_layers, batch, c.chunk_frames, c.heads, e))
  d = jnp.zeros((c.depth_layers, batch, c.levels, c.heads, de))
  return (t, t), (d, d)


def generate_frame(params, c: DiscreteARConfig, memory, prev, index,
                   tcache, key, temperature=1.0):
  """One frame: temporal step then the depth decoder over all levels."""
  model = DiscreteAR(c)
  h, tcache = model.apply({"params": params}, prev, index, tcache, memory,
                          method=DiscreteAR.temporal_step)
  _, dcache = _empty_caches(c, prev.shape[0])

  def level(carry, v):
    dcache, token = carry
    logits, dcache = model.apply({"params": params}, h, token, v, dcache,
                                 method=DiscreteAR.depth_step)
    token = jax.random.categorical(jax.random.fold_in(key, v),
                                   logits / temperature).astype(jnp.int32)
    return (dcache, token), token

  (_, _), tokens = jax.lax.scan(
      level, (dcache, jnp.zeros((prev.shape[0],), jnp.int32)),
      jnp.arange(c.levels))
  return tokens.T, tcache       # [B, V]


def generate_chunk(params, c: DiscreteARConfig, ctx_tokens, style_tokens,
                   key):
  """Encode the context once, decode chunk_frames frames. -> [B,F,V]."""
  model = DiscreteAR(c)
  memory = model.apply({"params": params}, ctx_tokens, style_tokens,
                       method=DiscreteAR.encode)
  b = ctx_tokens.shape[0]
  tcache, _ = _empty_caches(c, b)

  def frame(carry, f):
    tcache, prev = carry
    tokens, tcache = generate_frame(params, c, memory, prev, f, tcache,
                                    jax.random.fold_in(key, f))
    return (tcache, tokens), tokens

  _, frames = jax.lax.scan(frame, (tcache, jnp.zeros((b, c.levels),
                                                     jnp.int32)),
                           jnp.arange(c.chunk_frames))
  return jnp.transpose(frames, (1, 0, 2))
