"""Stable Audio Open 1.0 shaped LMDM (1.06B DiT, width 1536, depth 24).

SAO 1.0 keeps 768-wide conditioning tokens (project_cond_tokens=False), so
cross-attention has 12 key/value heads shared by 24 query heads; its global
conditioning is two seconds embeddings (1536) and its prompts 128 T5 tokens.

  lmdm bench stream --config configs/sao.py --modes ed,bc --steps 8 \
      --blocks 2 --json sao_bench.json
"""
import ml_collections


def get_config(arg: str = "bc"):
  c = ml_collections.ConfigDict()
  c.model = ml_collections.ConfigDict(dict(
      io_channels=64, embed_dim=1536, depth=24, num_heads=24,
      cond_token_dim=768, project_cond_tokens=False, global_cond_dim=1536,
      input_add_dim=65, postpend=True, qk_norm="none", rope_base=10000.0,
      ff_mult=4, timestep_features_dim=256, dtype="float32",
      remat="none"))
  c.geometry = ml_collections.ConfigDict(dict(
      mode=arg or "bc", context=192, block=48, window_chunks=4))
  c.cond_tokens = 130         # 128 T5 tokens + seconds_start + seconds_total.
  c.frame_rate = 44100 / 2048
  return c
