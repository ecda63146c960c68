"""Efficiency study at test size (seconds on a laptop; CI runs it).

  lmdm bench study --config configs/bench/study_tiny.py --json study.json \
      --report study_report

`study_tiny.py:quick` is a two-point sweep (outpaint and BC at s = 12,
o = 4, K = 2; no discrete-AR baseline) that the efficiency notebook runs in
CI (colab/efficiency.ipynb).
"""
import ml_collections


def get_config(arg: str = ""):
  if arg not in ("", "quick"):
    raise ValueError(f"unknown study_tiny variant {arg!r}; known: '', "
                     f"'quick'")
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
  if arg == "quick":
    c.modes = ["outpaint", "bc"]
    c.steps = [2]
    c.contexts = [12]
    c.timed_blocks = 1
  return c
