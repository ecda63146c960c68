"""ARC-Forcing post-training of an LMDM at SAO-Small shape (paper code
settings).

get_config("MODE,VARIANT"): MODE bc (default) or ed; VARIANT "" (the
paper's) or "tiny" (seconds on CPU, for tests). Start from a stage-1 model:

  lmdm train --config configs/arc_forcing.py:bc --workdir W \\
      --config.init.params=STAGE1_PARAMS --config.disc.init=WARMUP_PARAMS \\
      --config.data.dir=TFDS

Keys: configs/finetune.py's (seed, model, geometry, cond_tokens,
frame_rate, data, ckpt, mesh, train, init) plus:

  objective  "arc" (what `lmdm train` dispatches on)
  arc        blocks R, k_min, k_max (steps per block ~ U{k_min..k_max}),
             contrastive_weight, t_sampler ("logsnr_uniform" |
             "logit_normal"), rollout context dropout p_uncond / p_partial /
             max_partial_chunks, text_dropout (rollout prompts),
             optional approximate R1 / R2 penalties r1_weight, r2_weight
             (perturbation penalty_sigma; paper code: off by default)
  disc       exit_layer, channels, strides, mults, blocks (ConvNeXt head),
             init: base-model params for the backbone ("" = copy the
             generator's, minus its input-add path)
  optim_g, optim_d   AdamW per player (paper code: lr 1e-6, betas 0.9/0.95,
             weight decay 0.01, clip 1.0)
  init.params        the stage-1 generator (orbax params directory or a
             `lmdm export` package with params.npz); required

Training alternates: even updates train the generator, odd updates the
discriminator (paper code: `train_gen = optim_step % 2 == 0`);
`train.steps` counts both. Windows are s + R * o frames (`data.window`).
"""
import os

import ml_collections

from lmdm_jax.configs import load_config, parse_arg

HERE = os.path.dirname(os.path.abspath(__file__))
VARIANTS = ("", "tiny")


def _optim(lr: float) -> ml_collections.ConfigDict:
  return ml_collections.ConfigDict(dict(
      lr=lr, b1=0.9, b2=0.95, eps=1e-8, weight_decay=0.01, clip_norm=1.0,
      warmup_steps=0, decay="constant", decay_steps=0, final_ratio=0.0))


def get_config(arg: str = ""):
  mode, variant = parse_arg(arg, ("bc", "ed"), VARIANTS)
  c = load_config(os.path.join(HERE, f"finetune.py:{mode},{variant}"))
  c.objective = "arc"
  # Rollout context dropout (paper code: p_uncond 0.25, p_partial 0.1) and
  # rollout prompt dropout (BC config 0.1); loss.* is stage-1's, unused.
  c.arc = ml_collections.ConfigDict(dict(
      blocks=12, k_min=1, k_max=5, contrastive_weight=2.0 if mode == "bc"
      else 1.0, t_sampler="logsnr_uniform", p_uncond=0.25, p_partial=0.1,
      max_partial_chunks=4, text_dropout=0.1 if mode == "bc" else 0.0,
      r1_weight=0.0, r2_weight=0.0, penalty_sigma=0.01))
  c.disc = ml_collections.ConfigDict(dict(
      exit_layer=11, channels=128, strides=(1, 2, 2), mults=(1, 2, 4),
      blocks=(2, 2, 2), init=""))
  c.optim_g = _optim(1e-6)
  c.optim_d = _optim(1e-6)
  del c["optim"]
  # Paper: per-device batch 40 (320 on 8 accelerators). As 4 microbatches of
  # 10 both of the trainer's steps fit 80 GB by XLA's memory analysis
  # (generator 34.1 GiB, discriminator 66.4 GiB; unaccumulated ~101 / 281
  # GiB): docs/arc-memory.md.
  c.train.update(steps=4000, batch_size=320, accum_steps=4, ema_decay=0.99,
                 log_every=10)
  c.samples.every_steps = 0
  c.data.window = c.geometry.context + c.arc.blocks * c.geometry.block
  c.data.left_pad_short = False
  if variant == "tiny":
    c.arc.update(blocks=2, k_max=2, max_partial_chunks=2)
    # A one-stage, one-block head: the same code paths as the paper's
    # three stages, ~25 % less compile time for the tests' G and D steps.
    c.disc.update(exit_layer=1, channels=8, strides=(1,), mults=(1,),
                  blocks=(1,))
    c.optim_g.lr = c.optim_d.lr = 1e-3
    c.train.update(steps=4, batch_size=8, accum_steps=1, ema_decay=0.9,
                   log_every=1)
    c.data.window = c.geometry.context + c.arc.blocks * c.geometry.block
  return c
