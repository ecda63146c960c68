"""Stable Audio Open Small shaped LMDM (the paper's model, 341M DiT).

Geometry of the paper's text models: context s=192, block o=48, block-causal
window W=4 chunks at 21.53 latent frames/s (8.9 s context, 2.2 s blocks).

  lmdm bench stream --config configs/sao_small.py --modes outpaint,ed,bc \
      --steps 8 --blocks 3 --json sao_small_bench.json
"""
import ml_collections


def get_config(arg: str = "bc"):
  c = ml_collections.ConfigDict()
  c.model = ml_collections.ConfigDict(dict(
      io_channels=64, embed_dim=1024, depth=16, num_heads=8,
      cond_token_dim=768, project_cond_tokens=True, global_cond_dim=768,
      input_add_dim=65, postpend=True, qk_norm="ln", rope_base=10000.0,
      ff_mult=4, timestep_features_dim=256, dtype="float32",
      remat="none"))
  c.geometry = ml_collections.ConfigDict(dict(
      mode=arg or "bc", context=192, block=48, window_chunks=4))
  c.cond_tokens = 65          # 64 T5 tokens + 1 seconds_total token.
  c.frame_rate = 44100 / 2048
  return c
