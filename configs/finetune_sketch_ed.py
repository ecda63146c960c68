"""Stage-1 fine-tuning of an ED LMDM with sketch controls (issue 7).

As configs/finetune_ed.py (paper section 3.5 hyper-parameters), plus
time-aligned controls through the input-add path (lmdm_jax/model/control_inputs.py,
docs/control.md): loudness, brightness, pitch (1 dim each) and the 84-bin
top-4 CQT melody, each with its own bias-free, zero-initialised projection
of [values, mask]; per-control dropout 0.5 and random median filtering
(p 0.5, kernels 3..9 frames) as in Sketch2Sound. Variant "jam" adds the
partner's latents (accompaniment) with future visibility t_f = 0 frames
(the block start: the live case).

  lmdm data build --audio-dir AUDIO --codec mel --out DATA \
      --controls loudness,brightness,pitch,cqt_topk
  lmdm train --config configs/finetune_sketch_ed.py --workdir W \
      --config.data.dir=DATA --config.init.params=STAGE1_PARAMS_CKPT
  lmdm train --config configs/finetune_sketch_ed.py:tiny --workdir /tmp/w
"""
from lmdm_jax.train.config import sketch_config


def get_config(arg: str = ""):
  return sketch_config("ed", arg)
