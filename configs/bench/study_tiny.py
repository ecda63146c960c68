"""Efficiency study at test size (seconds on a laptop; CI runs it).

  lmdm bench study --config configs/bench/study_tiny.py --json study.json \
      --report study_report
"""
import ml_collections


def get_config(arg: str = ""):
  del arg
  c = ml_collections.ConfigDict()
  c.model_config = "configs/tiny.py"
  c.modes = ["outpaint", "ed", "bc", "discrete_ar"]
  c.steps = [2, 4]
  c.contexts = [8, 12]
  c.blocks = [4]
  c.batches = [1]
  c.dtypes = ["float32"]
  c.timed_blocks = 2
  c.peak_n = 256
  c.match_params = False
  c.discrete_ar = ml_collections.ConfigDict(dict(
      width=64, heads=2, mlp=128, encoder_layers=2, temporal_layers=2,
      depth_layers=1, depth_width=64, vocab=32, context_levels=2, levels=4,
      style_tokens=2, frame_rate=25.0, context_frames=10, chunk_frames=4))
  return c
