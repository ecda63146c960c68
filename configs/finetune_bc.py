"""Stage-1 fine-tuning of a BC LMDM (paper section 3.5 hyper-parameters).

SAO-Small sized DiT, s=192 / o=48 / W=4, AdamW lr 5e-5, betas (0.9, 0.999),
wd 0, global batch 256 (the paper's), 10k steps, outpainting dropout
(p_uncond 0.2, p_partial 0.3 of 1-4 oldest chunks), CFG dropout 0.1 on text
and on the input-add condition, uniform timesteps with SAO's length shift.

  lmdm data build --audio-dir AUDIO --codec pool --out DATA
  lmdm train --config configs/finetune_bc.py --workdir W \
      --config.data.dir=DATA --config.init.params=SAO_PARAMS_CKPT
  lmdm train --config configs/finetune_bc.py:tiny --workdir /tmp/w  # smoke
"""
from lmdm_jax.train.config import finetune_config


def get_config(arg: str = ""):
  return finetune_config("bc", arg)
