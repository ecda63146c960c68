"""Stage-1 fine-tuning of an LMDM with sketch controls (issue 7).

get_config("MODE,VARIANT"): as configs/finetune.py (MODE bc or ed), plus
time-aligned controls through the input-add path
(lmdm_jax/model/control_inputs.py, docs/control.md): loudness, brightness,
pitch (1 dim each) and the 84-bin top-4 CQT melody, each with its own
bias-free, zero-initialised projection of [values, mask]; per-control
dropout 0.5 and random median filtering (p 0.5, kernels 3..9 frames) as in
Sketch2Sound. VARIANT "jam" adds the partner's latents (accompaniment) with
future visibility t_f = 0 frames (the block start: the live case);
"tiny" / "tiny_jam" are test sizes.

  lmdm data build --audio-dir AUDIO --codec mel --out DATA \\
      --controls loudness,brightness,pitch,cqt_topk
  lmdm train --config configs/finetune_sketch.py:bc --workdir W \\
      --config.data.dir=DATA --config.init.params=STAGE1_PARAMS_CKPT
  lmdm train --config configs/finetune_sketch.py:bc,tiny --workdir /tmp/w

`add_sketch` is what configs/sketch_demo.py adds to the demo recipe.
"""
import os

from lmdm_jax.configs import load_config, parse_arg

HERE = os.path.dirname(os.path.abspath(__file__))
VARIANTS = ("", "tiny", "jam", "tiny_jam")
# loudness, brightness and pitch are 1-dim curves, cqt_topk the paper's
# 84-bin top-4 CQT melody (lmdm_jax/data/features.py).
SKETCH_CONTROLS = dict(loudness=1, brightness=1, pitch=1, cqt_topk=84)


def add_sketch(c, jam: bool = False, partner_visibility: int = 0,
               partner_visibilities=()):
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


def get_config(arg: str = ""):
  mode, variant = parse_arg(arg, ("bc", "ed"), VARIANTS)
  size = "tiny" if variant.startswith("tiny") else ""
  c = load_config(os.path.join(HERE, f"finetune.py:{mode},{size}"))
  return add_sketch(c, jam=variant.endswith("jam"))
