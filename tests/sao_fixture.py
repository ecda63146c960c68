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
The weights are drawn by lmdm_jax/convert/random_hub.py (also used by the
full-size SAO benchmark); this file holds the toy sizes.
"""
from __future__ import annotations

import copy
import json
import os

from lmdm_jax.convert.random_hub import (sao_state_dict, snapshot,
                                         t5_state_dict, train_spm)
from lmdm_jax.convert.released import SAO_SMALL

T5_WIDTH = 16
LATENT = 8
MAX_LENGTH = 8


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


def build_hub_cache(cache: str, t5_width: int = T5_WIDTH,
                    latent: int = LATENT, seed: int = 0) -> str:
  """Fills `cache` (a hub cache dir) with the toy SAO Small and T5."""
  from safetensors.numpy import save_file
  config = model_config(latent=latent)
  snap = snapshot(cache, "stabilityai/stable-audio-open-small",
                   f"{seed:040x}"[:38] + "aa")
  with open(os.path.join(snap, "model_config.json"), "w") as f:
    json.dump(config, f)
  save_file(sao_state_dict(config, seed),
            os.path.join(snap, "model.safetensors"))
  t5 = t5_config(t5_width)
  snap = snapshot(cache, "google-t5/t5-base", f"{seed:040x}"[:38] + "bb")
  with open(os.path.join(snap, "config.json"), "w") as f:
    json.dump(t5, f)
  save_file(t5_state_dict(t5, seed + 1),
            os.path.join(snap, "model.safetensors"))
  train_spm(os.path.join(snap, "spiece"))
  os.remove(os.path.join(snap, "spiece.vocab"))
  return cache
