"""A toy Stable Audio Open Small on a local Hugging Face hub cache.

`build_hub_cache(cache)` writes, every parameter random, what `lmdm fetch
sao-small` downloads, in the hub cache layout (models--org--name/refs/main
and snapshots/<commit>/), so the fetch command runs against it with the hub
offline (no network):

  stabilityai/stable-audio-open-small: model_config.json (SAO Small's
    structure at tiny widths) and model.safetensors in stable-audio-tools'
    key layout: model.model.* (the DiT, LayerNorm beta buffers, RoPE
    inv_freq), conditioner.conditioners.seconds_total.* (number
    conditioner), pretransform.model.{encoder,decoder}.* (the Oobleck VAE,
    weight-normed as released: weight_g / weight_v);
  google-t5/t5-base: config.json, model.safetensors (a tiny T5 in
    transformers' layout, decoder and lm_head included, as a full T5
    checkpoint has them) and spiece.model (a sentencepiece model trained
    here on a few captions).

The VAE keeps SAO's strides (hop 2048, 21.5 latent frames/s at 44.1 kHz)
with 4 channels, so a 10 s stream has SAO's frame count at a toy cost.
Everything is built from our own parameter shapes through the inverse of
the converters' name and layout mapping (torch is not needed).
"""
from __future__ import annotations

import copy
import json
import os

import numpy as np

from lmdm_jax.convert.released import SAO_SMALL

T5_WIDTH = 16
LATENT = 8
MAX_LENGTH = 8
CAPTIONS = [f"{a} {b} at {n} bpm with {c}" for n in range(60, 180, 7)
            for a, b, c in [("ambient", "piano", "pads"),
                            ("fast", "drums", "bass"),
                            ("slow", "string", "choir")]]


def model_config(latent: int = LATENT, cond_dim: int = T5_WIDTH) -> dict:
  """SAO Small's released model config (lmdm_jax/convert/released.py) at
  toy size: the same structure and conditioning, small widths."""
  c = copy.deepcopy(SAO_SMALL)
  m = c["model"]
  vae = m["pretransform"]["config"]
  vae["encoder"]["config"].update(channels=4, c_mults=[1, 1, 1, 1, 1],
                                  latent_dim=2 * latent)
  vae["decoder"]["config"].update(channels=4, c_mults=[1, 1, 1, 1, 1],
                                  latent_dim=latent)
  vae["latent_dim"] = latent
  m["conditioning"]["cond_dim"] = cond_dim
  m["conditioning"]["configs"][0]["config"]["max_length"] = MAX_LENGTH
  m["diffusion"]["config"].update(io_channels=latent, embed_dim=64, depth=2,
                                  num_heads=2, cond_token_dim=cond_dim,
                                  global_cond_dim=cond_dim)
  return c


def t5_config(width: int = T5_WIDTH) -> dict:
  return {"vocab_size": 80, "d_model": width, "d_kv": 8, "d_ff": 24,
          "num_layers": 2, "num_heads": 2,
          "relative_attention_num_buckets": 8,
          "relative_attention_max_distance": 16,
          "feed_forward_proj": "relu", "layer_norm_epsilon": 1e-6,
          "model_type": "t5"}


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


def train_spm(prefix: str) -> str:
  import sentencepiece as spm
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(CAPTIONS), model_prefix=prefix, vocab_size=60,
      model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
      hard_vocab_limit=False, minloglevel=2)
  return prefix + ".model"


def _snapshot(cache: str, repo: str, commit: str) -> str:
  root = os.path.join(cache, "models--" + repo.replace("/", "--"))
  os.makedirs(os.path.join(root, "refs"), exist_ok=True)
  with open(os.path.join(root, "refs", "main"), "w") as f:
    f.write(commit)
  snap = os.path.join(root, "snapshots", commit)
  os.makedirs(snap, exist_ok=True)
  return snap


def build_hub_cache(cache: str, t5_width: int = T5_WIDTH,
                    latent: int = LATENT, seed: int = 0) -> str:
  """Fills `cache` (a hub cache dir) with the toy SAO Small and T5."""
  from safetensors.numpy import save_file
  config = model_config(latent=latent)
  snap = _snapshot(cache, "stabilityai/stable-audio-open-small",
                   f"{seed:040x}"[:38] + "aa")
  with open(os.path.join(snap, "model_config.json"), "w") as f:
    json.dump(config, f)
  save_file(sao_state_dict(config, seed),
            os.path.join(snap, "model.safetensors"))
  t5 = t5_config(t5_width)
  snap = _snapshot(cache, "google-t5/t5-base", f"{seed:040x}"[:38] + "bb")
  with open(os.path.join(snap, "config.json"), "w") as f:
    json.dump(t5, f)
  save_file(t5_state_dict(t5, seed + 1),
            os.path.join(snap, "model.safetensors"))
  train_spm(os.path.join(snap, "spiece"))
  os.remove(os.path.join(snap, "spiece.vocab"))
  return cache
