"""A tiny LMDM for tests: every code path, seconds of CPU time.

Head dim 64 so the SAO rotary rule (max(head_dim // 2, 32)) rotates half of
each head, as in SAO-Small.

  pytest tests/ -q
"""
import ml_collections


def get_config(arg: str = "bc"):
  c = ml_collections.ConfigDict()
  c.model = ml_collections.ConfigDict(dict(
      io_channels=8, embed_dim=128, depth=2, num_heads=2,
      cond_token_dim=24, project_cond_tokens=True, global_cond_dim=16,
      input_add_dim=9, postpend=True, qk_norm="ln", rope_base=10000.0,
      ff_mult=4, timestep_features_dim=32, dtype="float32",
      remat="none"))
  c.geometry = ml_collections.ConfigDict(dict(
      mode=arg or "bc", context=12, block=4, window_chunks=3))
  c.cond_tokens = 5
  c.frame_rate = 44100 / 2048
  return c
