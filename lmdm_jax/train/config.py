"""The fine-tuning config shared by configs/finetune_{bc,ed}.py.

`finetune_config(mode, arg)` returns an ml_collections ConfigDict:

  seed, model, geometry, cond_tokens, frame_rate   as configs/sao_small.py
  loss    FinetuneSpec fields (dropouts, timestep sampler, time shift)
  optim   AdamW: lr, b1, b2, eps, weight_decay, clip_norm, warmup_steps,
          decay ("constant" | "cosine"), decay_steps, final_ratio
  train   steps, batch_size (global), accum_steps, ema_decay, log_every
  data    source ("tfds" | "synthetic"), dir, name, shuffle_seed, prefetch
  ckpt    every_steps, keep
  samples every_steps (0: off), blocks, steps, codec: periodic WAV samples
  mesh    devices (-1: all devices of all processes)
  init    params (orbax params checkpoint to start from; "" = scratch)

arg "tiny" gives a seconds-on-CPU variant for tests and smoke runs; "mid"
a 40M-parameter DiT (width 512, depth 8) with the paper's window geometry
and latent width, for CPU benchmarks.
"""
from __future__ import annotations

import ml_collections

_SAO_SMALL = dict(
    io_channels=64, embed_dim=1024, depth=16, num_heads=8,
    cond_token_dim=768, project_cond_tokens=True, global_cond_dim=768,
    input_add_dim=65, postpend=True, qk_norm="ln", rope_base=10000.0,
    ff_mult=4, timestep_features_dim=256, dtype="float32")

_TINY = dict(
    io_channels=8, embed_dim=128, depth=2, num_heads=2,
    cond_token_dim=24, project_cond_tokens=True, global_cond_dim=16,
    input_add_dim=9, postpend=True, qk_norm="ln", rope_base=10000.0,
    ff_mult=4, timestep_features_dim=32, dtype="float32")

VARIANTS = ("", "tiny", "mid")


def finetune_config(mode: str, arg: str = "") -> ml_collections.ConfigDict:
  """Paper hyper-parameters (lmdm-paper.md 3.5) for `mode`, or tiny ones."""
  arg = (arg or "").strip()
  if arg not in VARIANTS:
    raise ValueError(f"unknown finetune variant {arg!r}; known: {VARIANTS}")
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.model = ml_collections.ConfigDict(_SAO_SMALL)
  # s=192 context, o=48 block, W=4 chunks: the paper's text models. The
  # released trainer crops 256 frames; a window is s + o = 240 of them.
  c.geometry = ml_collections.ConfigDict(dict(
      mode=mode, context=192, block=48, window_chunks=4))
  c.cond_tokens = 65
  c.frame_rate = 44100 / 2048
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
  c.ckpt = ml_collections.ConfigDict(dict(every_steps=500, keep=3))
  # Periodic WAV samples into workdir/samples (every_steps 0: off).
  c.samples = ml_collections.ConfigDict(dict(every_steps=1000, blocks=4,
                                             steps=8, codec="mel"))
  c.mesh = ml_collections.ConfigDict(dict(devices=-1))
  c.init = ml_collections.ConfigDict(dict(params=""))
  if arg == "tiny":
    c.model = ml_collections.ConfigDict(_TINY)
    c.geometry.update(context=12, block=4, window_chunks=3)
    c.cond_tokens = 5
    c.loss.max_partial_chunks = 2
    c.optim.lr = 1e-3
    c.train.update(steps=6, batch_size=8, log_every=1)
    c.data.source = "synthetic"
    c.ckpt.every_steps = 2
    c.samples.update(every_steps=0, blocks=2, steps=2, codec="pool")
  elif arg == "mid":
    c.model.update(embed_dim=512, depth=8, num_heads=8,
                   timestep_features_dim=256)
    c.train.update(batch_size=8, log_every=1)
    c.data.source = "synthetic"
  return c


# Sketch controls (lmdm_jax/data/features.py): loudness, brightness and pitch are
# 1-dim curves, cqt_topk the paper's 84-bin top-4 CQT melody.
SKETCH_CONTROLS = dict(loudness=1, brightness=1, pitch=1, cqt_topk=84)
SKETCH_VARIANTS = ("", "tiny", "jam", "tiny_jam")


def add_sketch(c: ml_collections.ConfigDict, jam: bool = False,
               partner_visibility: int = 0,
               partner_visibilities=()) -> ml_collections.ConfigDict:
  """Adds sketch controls (and, with `jam`, the partner's latents) to a
  finetune config: model.controls, the control augmentation in `loss`
  (Sketch2Sound: per-control dropout 0.5, median filter with p 0.5 and
  kernels up to 9 frames ~0.4 s at 21.5 Hz) and `data.controls` for
  `lmdm data build --controls`. `partner_visibilities`: t_f values (frames)
  drawn per example in training (one model for several visibilities)."""
  controls = dict(SKETCH_CONTROLS)
  if jam:
    controls["partner"] = int(c.model.io_channels)
  c.model.controls = controls
  c.loss.update(control_dropout=0.5, median_p=0.5, median_max=9,
                partner_visibility=int(partner_visibility),
                partner_visibilities=tuple(int(v) for v in
                                           partner_visibilities))
  c.data.controls = ",".join(n for n in controls if n != "partner")
  return c


def sketch_config(mode: str, arg: str = "") -> ml_collections.ConfigDict:
  """Stage-1 fine-tuning with sketch controls ("jam": plus accompaniment,
  t_f = 0 frames, the live case); "tiny"/"tiny_jam": test sizes."""
  arg = (arg or "").strip()
  if arg not in SKETCH_VARIANTS:
    raise ValueError(f"unknown sketch variant {arg!r}; known: "
                     f"{SKETCH_VARIANTS}")
  c = finetune_config(mode, "tiny" if arg.startswith("tiny") else "")
  return add_sketch(c, jam=arg.endswith("jam"))
