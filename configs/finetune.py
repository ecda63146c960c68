"""Stage-1 fine-tuning of an LMDM (paper section 3.5 hyper-parameters).

get_config("MODE,VARIANT"): MODE bc (default) or ed; VARIANT "" (the
paper's: SAO-Small DiT from configs/sao_small.py, s=192 / o=48 / W=4,
AdamW lr 5e-5, betas (0.9, 0.999), wd 0, global batch 256, 10k steps,
outpainting dropout p_uncond 0.2 / p_partial 0.3 of 1-4 oldest chunks, CFG
dropout 0.1 on text and on the input-add condition, uniform timesteps with
SAO's length shift), "tiny" (configs/tiny.py, seconds on CPU: tests and
smoke runs) or "mid" (a 40M-parameter DiT, width 512 x 8 layers, with the
paper's geometry: CPU benchmarks).

  lmdm data build --audio-dir AUDIO --codec pool --out DATA
  lmdm train --config configs/finetune.py:bc --workdir W \\
      --config.data.dir=DATA --config.init.params=SAO_PARAMS_CKPT
  lmdm train --config configs/finetune.py:ed,tiny --workdir /tmp/w  # smoke
  lmdm train --config configs/finetune.py:bc --workdir W \\
      --config.data.dir=DATA --config.init.params=SAO_PACKAGE \\
      --config.text.encoder=t5          # SAO-Small with T5 + seconds_total

Keys (every recipe that trains starts from these):
  seed, model, geometry, cond_tokens, frame_rate   the model preset
  loss    FinetuneSpec fields (dropouts, timestep sampler, time shift)
  optim   AdamW: lr, b1, b2, eps, weight_decay, clip_norm, warmup_steps,
          decay ("constant" | "cosine"), decay_steps, final_ratio
  train   steps, batch_size (global), accum_steps, ema_decay, log_every
  data    source ("tfds" | "synthetic"), dir, name, shuffle_seed, prefetch
  ckpt    every_steps, keep, async_save (see train/checkpoint.py)
  samples every_steps (0: off), blocks, steps, codec: periodic WAV samples
  mesh    devices (-1: all devices of all processes)
  init    params (orbax params checkpoint or model package; "" = scratch);
          model "config" (the DiT is cfg.model, cond_tokens) or "package"
          (both taken from the init package's manifest: fine-tuning a
          fetched SAO-Small, or any package, without restating its shape)
  text    encoder: "" (no captions: zeros), "hashed_words", or "t5" (the
          init package's T5 and number conditioners: captions -> T5 tokens
          ++ seconds_total token, global = seconds_total; docs/training.md
          "Fine-tuning SAO-Small with its own conditioning")
  codec   name (+ kwargs) the exported package names when it has no base
          package (a run from a T5 package keeps the base's Oobleck)
"""
import os

import ml_collections

from lmdm_jax.configs import load_config, parse_arg

HERE = os.path.dirname(os.path.abspath(__file__))
VARIANTS = ("", "tiny", "mid")


def get_config(arg: str = ""):
  mode, variant = parse_arg(arg, ("bc", "ed", "outpaint"), VARIANTS)
  preset = "tiny.py" if variant == "tiny" else "sao_small.py"
  c = load_config(os.path.join(HERE, f"{preset}:{mode}"))
  c.seed = 0
  c.loss = ml_collections.ConfigDict(dict(
      p_uncond=0.2, p_partial=0.3, max_partial_chunks=4, cfg_dropout=0.1,
      input_add_dropout=0.1, sampler="uniform", logit_mean=0.0,
      logit_std=1.0, logsnr_min=-6.0, logsnr_max=2.0, shift=True,
      shift_min_length=256, shift_max_length=4096))
  c.optim = ml_collections.ConfigDict(dict(
      lr=5e-5, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, clip_norm=0.0,
      warmup_steps=0, decay="constant", decay_steps=0, final_ratio=0.0))
  c.train = ml_collections.ConfigDict(dict(
      steps=10_000, batch_size=256, accum_steps=1, ema_decay=0.0,
      log_every=10))
  c.data = ml_collections.ConfigDict(dict(
      source="tfds", dir="", name="lmdm_latents", shuffle_seed=0,
      prefetch=2))
  # Synchronous saves: a SIGKILL loses <= every_steps steps (async_save:
  # <= 2 * every_steps - 1; lmdm_jax/train/checkpoint.py).
  c.ckpt = ml_collections.ConfigDict(dict(every_steps=500, keep=3,
                                          async_save=False))
  # Periodic WAV samples into workdir/samples (every_steps 0: off).
  c.samples = ml_collections.ConfigDict(dict(every_steps=1000, blocks=4,
                                             steps=8, codec="mel"))
  c.mesh = ml_collections.ConfigDict(dict(devices=-1))
  c.init = ml_collections.ConfigDict(dict(params="", model="config"))
  c.text = ml_collections.ConfigDict(dict(encoder=""))
  c.codec = ml_collections.ConfigDict(dict(name="mel", kwargs={}))
  if variant == "tiny":
    c.loss.max_partial_chunks = 2
    c.optim.lr = 1e-3
    c.train.update(steps=6, batch_size=8, log_every=1)
    c.data.source = "synthetic"
    c.ckpt.every_steps = 2
    c.samples.update(every_steps=0, blocks=2, steps=2, codec="pool")
  elif variant == "mid":
    c.model.update(embed_dim=512, depth=8, num_heads=8,
                   timestep_features_dim=256)
    c.train.update(batch_size=8, log_every=1)
    c.data.source = "synthetic"
  return c
