"""T5 encoder (t5-base shapes and others, config-driven) in Flax.

Mirrors `transformers`' T5EncoderModel (eval mode) key by key:
`encoder.block.3.layer.0.SelfAttention.q.weight` ->
`encoder/block_3/layer_0/SelfAttention/q/kernel` (transposed),
`...relative_attention_bias.weight` -> `.../relative_attention_bias/embedding`,
`shared.weight` -> `shared/embedding`.

  ids [B, L] int, mask [B, L] bool -> hidden [B, L, d_model]
  x = shared[ids]
  per block: x += o(attn(rms(x)) + position bias + mask bias)  (no 1/sqrt(d)
             scaling: T5 folds it into its init)
             x += ff(rms(x))      ff: wo(relu(wi x)) or, "gated-gelu",
                                  wo(gelu_tanh(wi_0 x) * wi_1 x)
  hidden = rms(x) (final_layer_norm)
The relative position bias is computed once from block 0's table (shared
by every layer, as in T5): bidirectional log-spaced buckets of
key_pos - query_pos.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class T5Config:
  """Encoder architecture; defaults are t5-base's."""
  vocab_size: int = 32128
  d_model: int = 768
  d_kv: int = 64
  d_ff: int = 3072
  num_layers: int = 12
  num_heads: int = 12
  relative_attention_num_buckets: int = 32
  relative_attention_max_distance: int = 128
  layer_norm_epsilon: float = 1e-6
  feed_forward_proj: str = "relu"

  def __post_init__(self):
    if self.feed_forward_proj not in ("relu", "gated-gelu"):
      raise ValueError(f"feed_forward_proj must be 'relu' or 'gated-gelu', "
                       f"got {self.feed_forward_proj!r}")

  @classmethod
  def from_hf(cls, d: Mapping[str, Any]) -> "T5Config":
    """From a Hugging Face T5 config.json (unknown keys are ignored)."""
    names = {f.name for f in dataclasses.fields(cls)}
    kw = {k: d[k] for k in names if k in d}
    if "num_layers" not in d and "num_encoder_layers" in d:
      kw["num_layers"] = d["num_encoder_layers"]
    return cls(**kw)


def relative_buckets(q_len: int, k_len: int, num_buckets: int,
                     max_distance: int) -> np.ndarray:
  """[q_len, k_len] bucket ids of key_pos - query_pos (bidirectional).

  Host-side numpy (static shapes): half the buckets per direction, half of
  those exact offsets, the rest log-spaced up to max_distance.
  """
  rel = np.arange(k_len)[None, :] - np.arange(q_len)[:, None]
  half = num_buckets // 2
  out = (rel > 0).astype(np.int64) * half
  rel = np.abs(rel)
  max_exact = half // 2
  safe = np.maximum(rel, 1).astype(np.float32)     # small ones unused
  large = max_exact + (np.log(safe / max_exact)
                       / math.log(max_distance / max_exact)
                       * (half - max_exact)).astype(np.int64)
  large = np.minimum(large, half - 1)
  return out + np.where(rel < max_exact, rel, large)


class RMSNorm(nn.Module):
  eps: float

  @nn.compact
  def __call__(self, x):
    w = self.param("weight", nn.initializers.ones, (x.shape[-1],))
    var = jnp.mean(jnp.square(x.astype(jnp.float32)), -1, keepdims=True)
    return w * (x * jax.lax.rsqrt(var + self.eps))


def _dense(features, name):
  return nn.Dense(features, use_bias=False, name=name,
                  precision=jax.lax.Precision.HIGHEST)


class SelfAttention(nn.Module):
  config: T5Config

  @nn.compact
  def __call__(self, x, bias):
    c = self.config
    b, n, _ = x.shape
    inner = c.num_heads * c.d_kv
    q, k, v = (_dense(inner, nm)(x).reshape(b, n, c.num_heads, c.d_kv)
               for nm in ("q", "k", "v"))
    logits = jnp.einsum("bqhd,bkhd->bhqk", q, k,
                        precision=jax.lax.Precision.HIGHEST) + bias
    probs = jax.nn.softmax(logits, axis=-1)
    out = jnp.einsum("bhqk,bkhd->bqhd", probs, v,
                     precision=jax.lax.Precision.HIGHEST)
    return _dense(c.d_model, "o")(out.reshape(b, n, inner))


class FeedForward(nn.Module):
  config: T5Config

  @nn.compact
  def __call__(self, x):
    c = self.config
    if c.feed_forward_proj == "relu":
      h = nn.relu(_dense(c.d_ff, "wi")(x))
    else:
      h = (nn.gelu(_dense(c.d_ff, "wi_0")(x), approximate=True)
           * _dense(c.d_ff, "wi_1")(x))
    return _dense(c.d_model, "wo")(h)


class Block(nn.Module):
  config: T5Config

  @nn.compact
  def __call__(self, x, bias):
    c = self.config

    class _Attn(nn.Module):        # layer.0: {SelfAttention, layer_norm}
      @nn.compact
      def __call__(s, x):
        return SelfAttention(c, name="SelfAttention")(
            RMSNorm(c.layer_norm_epsilon, name="layer_norm")(x), bias)

    class _FF(nn.Module):          # layer.1: {DenseReluDense, layer_norm}
      @nn.compact
      def __call__(s, x):
        return FeedForward(c, name="DenseReluDense")(
            RMSNorm(c.layer_norm_epsilon, name="layer_norm")(x))

    x = x + _Attn(name="layer_0")(x)
    return x + _FF(name="layer_1")(x)


class T5Encoder(nn.Module):
  """ids [B, L] int32, mask [B, L] bool -> last hidden state [B, L, D]."""
  config: T5Config

  @nn.compact
  def __call__(self, ids, mask):
    c = self.config
    x = nn.Embed(c.vocab_size, c.d_model, name="shared")(ids)
    n = ids.shape[1]
    buckets = relative_buckets(n, n, c.relative_attention_num_buckets,
                               c.relative_attention_max_distance)
    table = self.param("relative_attention_bias",
                       nn.initializers.normal(1.0),
                       (c.relative_attention_num_buckets, c.num_heads))
    bias = jnp.transpose(table[buckets], (2, 0, 1))[None]     # [1,H,L,L]
    bias = bias + jnp.where(mask[:, None, None, :], 0.0,
                            jnp.finfo(jnp.float32).min)
    for i in range(c.num_layers):
      x = Block(c, name=f"block_{i}")(x, bias)
    return RMSNorm(c.layer_norm_epsilon, name="final_layer_norm")(x)
