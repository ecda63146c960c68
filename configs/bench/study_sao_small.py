"""Efficiency study at SAO-Small shape (the paper's model, 341M DiT) against
a Magenta-RT-v1-shaped discrete-AR model scaled to the same parameter count.

Sweeps K in {2, 8} and context s in {96, 192} (o = 48; BC window W = s/o).
About 15-25 minutes on a 2-core CPU; minutes on an accelerator.

  lmdm bench study --config configs/bench/study_sao_small.py \
      --json benchmarks/results/study_sao_small.json \
      --report benchmarks/results/study_sao_small
"""
import ml_collections


def get_config(arg: str = ""):
  del arg
  c = ml_collections.ConfigDict()
  c.model_config = "configs/sao_small.py"
  c.modes = ["outpaint", "ed", "bc", "discrete_ar"]
  c.steps = [2, 8]
  c.contexts = [96, 192]
  c.blocks = [48]
  c.batches = [1]
  c.dtypes = ["float32"]
  c.timed_blocks = 3
  c.peak_n = 2048
  c.match_params = True
  # Magenta RT v1 `large` shape (25 Hz frames, 10 s context at 4 coarse RVQ
  # levels, 2 s chunks of 16 levels); depth scaled to the LMDM's size.
  c.discrete_ar = ml_collections.ConfigDict(dict(
      width=1024, heads=16, mlp=2816, encoder_layers=24, temporal_layers=20,
      depth_layers=4, depth_width=1024, vocab=1024, context_levels=4,
      levels=16, style_tokens=6, frame_rate=25.0, context_frames=250,
      chunk_frames=50))
  return c
