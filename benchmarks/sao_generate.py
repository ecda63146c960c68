"""Thin script over lmdm_jax/bench/sao_generate.py (its docstring says what
it measures), plus --random-package DIR: builds (once) a package with
random weights at Stable Audio Open Small's full shape (341M DiT, T5-base,
the Oobleck VAE, seconds_total) the way a user's is built, through
`lmdm fetch sao-small` reading a local hub cache in the hub's offline mode,
written with the toy hub fixture's helpers (tests/sao_fixture.py) from
SAO Small's and t5-base's real configs. Only the sentencepiece model is
the fixture's small one (token ids < 80 of T5's 32128: cost is the same).

  PYTHONPATH=. python3 benchmarks/sao_generate.py \\
      --random-package /tmp/sao_small_random --blocks 4 \\
      --json benchmarks/results/sao_generate_cpu.json
"""
import argparse
import json
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from lmdm_jax.bench.sao_generate import main  # noqa: E402

# stabilityai/stable-audio-open-small's model_config.json (the parts the
# converters read) and google-t5/t5-base's config.json.
SAO_SMALL = {
    "model_type": "diffusion_cond", "sample_rate": 44100,
    "sample_size": 524288, "audio_channels": 2,
    "model": {
        "pretransform": {"type": "autoencoder", "config": {
            "encoder": {"type": "oobleck", "config": {
                "in_channels": 2, "channels": 128,
                "c_mults": [1, 2, 4, 8, 16], "strides": [2, 4, 4, 8, 8],
                "latent_dim": 128, "use_snake": True}},
            "decoder": {"type": "oobleck", "config": {
                "out_channels": 2, "channels": 128,
                "c_mults": [1, 2, 4, 8, 16], "strides": [2, 4, 4, 8, 8],
                "latent_dim": 64, "use_snake": True, "final_tanh": False}},
            "latent_dim": 64, "downsampling_ratio": 2048, "io_channels": 2}},
        "conditioning": {"cond_dim": 768, "configs": [
            {"id": "prompt", "type": "t5",
             "config": {"t5_model_name": "t5-base", "max_length": 64}},
            {"id": "seconds_total", "type": "number",
             "config": {"min_val": 0, "max_val": 256}}]},
        "diffusion": {
            "type": "dit", "diffusion_objective": "rf_denoiser",
            "cross_attention_cond_ids": ["prompt", "seconds_total"],
            "global_cond_ids": ["seconds_total"],
            "config": {"io_channels": 64, "embed_dim": 1024, "depth": 16,
                       "num_heads": 8, "cond_token_dim": 768,
                       "global_cond_dim": 768,
                       "transformer_type": "continuous_transformer",
                       "attn_kwargs": {"qk_norm": "ln"}}}}}
T5_BASE = {"vocab_size": 32128, "d_model": 768, "d_kv": 64, "d_ff": 3072,
           "num_layers": 12, "num_heads": 12,
           "relative_attention_num_buckets": 32,
           "relative_attention_max_distance": 128,
           "feed_forward_proj": "relu", "layer_norm_epsilon": 1e-6,
           "model_type": "t5"}


def random_package(out: str) -> str:
  """Writes (unless `out` holds one) the random full-size package."""
  if os.path.isfile(os.path.join(out, "model.json")):
    return out
  from safetensors.numpy import save_file
  from tests import sao_fixture as fx
  from lmdm_jax.fetch import fetch
  cache = out.rstrip("/") + ".hub"
  snap = fx._snapshot(cache, "stabilityai/stable-audio-open-small", "a" * 40)
  with open(os.path.join(snap, "model_config.json"), "w") as f:
    json.dump(SAO_SMALL, f)
  save_file(fx.sao_state_dict(SAO_SMALL), os.path.join(snap,
                                                       "model.safetensors"))
  snap = fx._snapshot(cache, "google-t5/t5-base", "b" * 40)
  with open(os.path.join(snap, "config.json"), "w") as f:
    json.dump(T5_BASE, f)
  save_file(fx.t5_state_dict(T5_BASE), os.path.join(snap,
                                                    "model.safetensors"))
  fx.train_spm(os.path.join(snap, "spiece"))
  fetch("sao-small", out, cache_dir=cache, offline=True)
  shutil.rmtree(cache, ignore_errors=True)
  return out


if __name__ == "__main__":
  ap = argparse.ArgumentParser(add_help=False)
  ap.add_argument("--random-package", default=None)
  known, rest = ap.parse_known_args()
  if known.random_package:
    rest = ["--package", random_package(known.random_package)] + rest
  main(rest)
