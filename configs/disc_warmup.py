"""Discriminator warm-up (ARC-Forcing stage 0): the base, bidirectional DiT
trained with flow matching on whole long windows (paper: 768 frames), with
no context and no input-add path (lmdm_jax/train/arc/warmup.py). Its parameters
become the ARC discriminator's backbone (`--config.disc.init`).

  lmdm train --config configs/disc_warmup.py --workdir W \\
      --config.init.params=SAO_SMALL_PARAMS --config.data.dir=TFDS

args: "" SAO-Small, 768 frames (paper); "demo": the demo model's shape at
the demo ARC window (96 + 8 x 24 = 288 frames), started from the shipped
stage-1 demo model; "tiny": seconds on CPU, for tests.
"""
import os

from lmdm_jax.configs import load_config

HERE = os.path.dirname(os.path.abspath(__file__))


def get_config(arg: str = ""):
  arg = (arg or "").strip()
  if arg == "demo":
    c = load_config(os.path.join(HERE, "demo.py"))
    c.data.window = 288
    c.data.left_pad_short = True
    c.init.params = os.path.join(os.path.dirname(HERE), "lmdm_jax", "assets",
                                 "demo")
    c.optim.update(lr=2e-4, warmup_steps=20, decay="constant")
    c.train.update(steps=300, batch_size=8, ema_decay=0.0, log_every=10)
    c.ckpt.update(every_steps=50, keep=2)
  elif arg in ("", "tiny"):
    c = load_config(os.path.join(HERE, f"finetune.py:outpaint,{arg}"))
    c.data.window = 768 if arg == "" else 16
    c.optim.update(lr=1e-4 if arg == "" else 1e-3, b2=0.99,
                   weight_decay=0.01, clip_norm=1.0)
    c.train.update(steps=20_000 if arg == "" else 4,
                   batch_size=64 if arg == "" else 8)
  else:
    raise ValueError(f"unknown disc_warmup variant {arg!r}; known: '', "
                     f"'demo', 'tiny'")
  c.objective = "base"
  c.model.input_add_dim = 0
  c.samples.every_steps = 0
  return c
