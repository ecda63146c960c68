"""Random-weight checkpoints in the released layouts, written to a local
Hugging Face hub cache, so `lmdm fetch` and the converters run with no
network and no real weights.

`sao_state_dict(config)` draws every parameter of a stable-audio-tools
model config (SAO Small's structure at any width: the DiT with LayerNorm
beta buffers and RoPE inv_freq, the seconds_total number conditioner, the
weight-normed Oobleck VAE) under stable-audio-tools' names and layouts;
`t5_state_dict(config)` a T5 in transformers' T5ForConditionalGeneration
layout. Both are built from this project's own parameter shapes through the
inverse of the converters' name and layout mapping, so torch is not needed.
The test suite uses them at toy widths (tests/sao_fixture.py); the SAO
benchmark at full size, to measure the real shape's cost without the real
weights (benchmarks/sao_generate.py --random-package).
"""
from __future__ import annotations

import os

import numpy as np

CAPTIONS = [f"{a} {b} at {n} bpm with {c}" for n in range(60, 180, 7)
            for a, b, c in [("ambient", "piano", "pads"),
                            ("fast", "drums", "bass"),
                            ("slow", "string", "choir")]]


def _draw(rng, path: str, shape) -> np.ndarray:
  leaf = path.split("/")[-1]
  noise = rng.standard_normal(shape).astype(np.float32)
  if leaf == "kernel":
    fan_in = int(np.prod(shape[:-1]))
    return noise / np.sqrt(fan_in)
  if leaf in ("gamma", "scale", "weight"):
    return 1.0 + 0.1 * noise
  if leaf in ("embedding", "relative_attention_bias", "weights"):
    return noise
  return 0.1 * noise


def sao_state_dict(config: dict, seed: int = 0) -> dict:
  """DiT + seconds_total + Oobleck, stable-audio-tools names and layouts."""
  from lmdm_jax.convert.oobleck import config_from_sao
  from lmdm_jax.convert.oobleck import param_shapes as vae_shapes
  from lmdm_jax.convert.sao import dit_config_from_sao
  from lmdm_jax.convert.state_dict import flatten, torch_name
  from lmdm_jax.model.init import param_shapes
  rng = np.random.default_rng(seed)
  cfg = dit_config_from_sao(config)
  sd = {}
  for path, a in flatten(param_shapes(cfg.dit)).items():
    w = _draw(rng, path, a.shape)
    if path.endswith("/kernel"):
      w = w.T[..., None] if "process_conv" in path else w.T
    sd["model.model." + torch_name(path)] = np.ascontiguousarray(w)
  d = cfg.dit
  for i in range(d.depth):
    for n in ("pre_norm", "cross_attend_norm", "ff_norm"):
      sd[f"model.model.transformer.layers.{i}.{n}.beta"] = np.zeros(
          d.embed_dim, np.float32)
  r = d.rotary_dim
  sd["model.model.transformer.rotary_pos_emb.inv_freq"] = (
      1.0 / 10000 ** (np.arange(0, r, 2) / r)).astype(np.float32)
  out_dim = config["model"]["conditioning"]["cond_dim"]
  pre = "conditioner.conditioners.seconds_total.embedder.embedding."
  sd[pre + "0.weights"] = rng.standard_normal(128).astype(np.float32)
  sd[pre + "1.weight"] = (rng.standard_normal((out_dim, 257))
                          / 16).astype(np.float32)
  sd[pre + "1.bias"] = (0.1 * rng.standard_normal(out_dim)).astype(
      np.float32)
  vcfg = config_from_sao(config)
  n_up = len(vcfg.strides)
  for path, a in flatten(vae_shapes(vcfg)).items():
    w = _draw(rng, path, a.shape)
    name = "pretransform.model." + torch_name(path)
    if not path.endswith("/kernel"):
      sd[name] = w
      continue
    parts = path.split("/")
    transposed = (parts[0] == "decoder" and len(parts) == 4
                  and parts[2] == "layers_1"
                  and 1 <= int(parts[1].split("_")[1]) <= n_up)
    # Flax [k, in, out] -> Conv1d [out, in, k] / ConvTranspose1d [in, out, k]
    w = (w.transpose(1, 2, 0)[:, :, ::-1] if transposed
         else w.transpose(2, 1, 0))
    w = np.ascontiguousarray(w)
    g = np.sqrt(np.sum(w.astype(np.float64) ** 2, axis=(1, 2),
                       keepdims=True)).astype(np.float32)
    base = name[:-len(".weight")]
    sd[base + ".weight_g"], sd[base + ".weight_v"] = g, w
  return sd


def t5_state_dict(config: dict, seed: int = 1) -> dict:
  """A tiny T5 in transformers' T5ForConditionalGeneration layout."""
  from lmdm_jax.convert.state_dict import flatten, torch_name
  from lmdm_jax.convert.t5 import REL_BIAS, param_shapes
  from lmdm_jax.text.t5 import T5Config
  rng = np.random.default_rng(seed)
  cfg = T5Config.from_hf(config)
  sd = {}
  for path, a in flatten(param_shapes(cfg)).items():
    w = _draw(rng, path, a.shape)
    if path == "relative_attention_bias":
      name = REL_BIAS
    elif path == "shared/embedding":
      name = "shared.weight"
    else:
      name = "encoder." + torch_name(path)
    sd[name] = np.ascontiguousarray(w.T if path.endswith("/kernel") else w)
  sd["encoder.embed_tokens.weight"] = sd["shared.weight"].copy()   # tied
  sd["decoder.final_layer_norm.weight"] = np.ones(cfg.d_model, np.float32)
  sd["lm_head.weight"] = rng.standard_normal(
      (cfg.vocab_size, cfg.d_model)).astype(np.float32)
  return sd


def train_spm(prefix: str, sentences=CAPTIONS) -> str:
  """Trains a small sentencepiece model (T5's special-token ids) on
  `sentences`: prefix + ".model". Token ids stay below 80 of T5's 32128,
  which leaves every cost but the vocabulary lookup unchanged."""
  import sentencepiece as spm
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(sentences), model_prefix=prefix, vocab_size=60,
      model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
      hard_vocab_limit=False, minloglevel=2)
  return prefix + ".model"


def snapshot(cache: str, repo: str, commit: str) -> str:
  """A snapshot folder of `repo` at `commit` in the hub cache layout
  (models--org--name/refs/main and snapshots/<commit>/), made current."""
  root = os.path.join(cache, "models--" + repo.replace("/", "--"))
  os.makedirs(os.path.join(root, "refs"), exist_ok=True)
  with open(os.path.join(root, "refs", "main"), "w") as f:
    f.write(commit)
  snap = os.path.join(root, "snapshots", commit)
  os.makedirs(snap, exist_ok=True)
  return snap
