"""ARC-Forcing post-training of the ED LMDM at SAO-Small shape (paper code
settings; lmdm_jax/train/arc/config.py). Start from a stage-1 model:

  lmdm train --config configs/arc_forcing_ed.py --workdir W \\
      --config.init.params=STAGE1_PARAMS --config.disc.init=WARMUP_PARAMS \\
      --config.data.dir=TFDS

arg "tiny": seconds-on-CPU sizes for tests.
"""
from lmdm_jax.train.arc.config import arc_config


def get_config(arg: str = ""):
  return arc_config("ed", arg)
