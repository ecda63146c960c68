"""Hugging Face T5 (encoder) checkpoints -> lmdm_jax T5 params.

  lmdm convert t5 --hf-dir t5-base/ --out t5/
  enc = T5TextEncoder("t5/", max_length=64)
  emb, mask = enc(["ambient piano, 90 bpm"])     # [1, 64, 768], [1, 64]

Reads config.json and model.safetensors (or pytorch_model.bin with torch)
from --hf-dir; copies spiece.model when present. Strict: every encoder
tensor is used; decoder tensors and `lm_head` (a full T5 checkpoint) are
explicitly ignored; `encoder.embed_tokens.weight` is the tied copy of
`shared.weight` (either may be stored) and is checked equal when both are.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np

from lmdm_jax.convert.state_dict import (ConversionError, flatten, match,
                                         read_state_dict, torch_name,
                                         unflatten)
from lmdm_jax.text.t5 import T5Config, T5Encoder

REL_BIAS = ("encoder.block.0.layer.0.SelfAttention."
            "relative_attention_bias.weight")


def param_shapes(cfg: T5Config):
  ids = jnp.zeros((1, 4), jnp.int32)
  return jax.eval_shape(lambda: T5Encoder(cfg).init(
      jax.random.PRNGKey(0), ids, jnp.ones((1, 4), bool)))["params"]


def convert_state_dict(sd, cfg: T5Config):
  sd = dict(sd)
  if "shared.weight" not in sd and "encoder.embed_tokens.weight" in sd:
    sd["shared.weight"] = sd.pop("encoder.embed_tokens.weight")
  elif "encoder.embed_tokens.weight" in sd:
    tied = sd.pop("encoder.embed_tokens.weight")
    if tied.shape != sd["shared.weight"].shape or not np.array_equal(
        tied, sd["shared.weight"]):
      raise ValueError("encoder.embed_tokens.weight differs from "
                       "shared.weight (untied embeddings are not T5)")
  targets = {p: a.shape for p, a in flatten(param_shapes(cfg)).items()}

  def source(path):
    if path == "relative_attention_bias":
      return REL_BIAS
    if path == "shared/embedding":
      return "shared.weight"
    return "encoder." + torch_name(path)

  def layout(path, v):
    return v.T if path.endswith("/kernel") else v

  return unflatten(match(
      sd, targets, source, layout=layout, note="T5 encoder",
      ignored=lambda k: k.startswith(("decoder.", "lm_head."))))


def convert_t5(hf_dir: str, out_dir: str) -> dict:
  with open(os.path.join(hf_dir, "config.json")) as f:
    cfg = T5Config.from_hf(json.load(f))
  for name in ("model.safetensors", "pytorch_model.bin"):
    path = os.path.join(hf_dir, name)
    if os.path.exists(path):
      break
  else:
    raise FileNotFoundError(f"{hf_dir} has no model.safetensors or "
                            f"pytorch_model.bin")
  params = convert_state_dict(read_state_dict(path), cfg)
  os.makedirs(out_dir, exist_ok=True)
  flat = flatten(params)
  np.savez(os.path.join(out_dir, "params.npz"), **flat)
  with open(os.path.join(out_dir, "config.json"), "w") as f:
    json.dump({"t5": dataclasses.asdict(cfg),
               "converted_from": os.path.abspath(path)}, f, indent=2)
  spm = os.path.join(hf_dir, "spiece.model")
  if os.path.exists(spm):
    shutil.copy(spm, os.path.join(out_dir, "spiece.model"))
  return {"out": out_dir, "tensors": len(flat),
          "params": int(sum(a.size for a in flat.values())),
          "tokenizer": os.path.exists(spm), "t5": dataclasses.asdict(cfg)}


def load_t5(directory: str):
  """-> (T5Config, params) from a `convert_t5` directory."""
  with open(os.path.join(directory, "config.json")) as f:
    cfg = T5Config(**json.load(f)["t5"])
  with np.load(os.path.join(directory, "params.npz")) as z:
    flat = {k: jnp.asarray(z[k]) for k in z.files}
  return cfg, unflatten(flat)


class T5TextEncoder:
  """SAO's T5 conditioner: texts -> (embeddings [B, L, D] with padding
  zeroed, mask [B, L] bool), L = max_length (64 SAO Small, 128 SAO 1.0).

  SAO runs T5 under float16 autocast on GPU; this runs float32.
  """

  def __init__(self, directory: str, max_length: int = 64,
               tokenizer_file: str | None = None):
    from lmdm_jax.text.tokenizer import T5Tokenizer
    self.config, self.params = load_t5(directory)
    self.tokenizer = T5Tokenizer(tokenizer_file or directory, max_length)
    model = T5Encoder(self.config)
    self._fn = jax.jit(lambda p, i, m: model.apply({"params": p}, i, m)
                       * m[..., None])

  def __call__(self, texts):
    ids, mask = self.tokenizer(texts)
    return self._fn(self.params, jnp.asarray(ids), jnp.asarray(mask)), mask
