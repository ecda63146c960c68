"""Thin script over lmdm_jax/bench/sao_generate.py (its docstring says what
it measures), plus --random-package DIR: builds (once) a package with
random weights at Stable Audio Open Small's full shape (341M DiT, T5-base,
the Oobleck VAE, seconds_total) the way a user's is built, through
`lmdm fetch sao-small` reading a local hub cache in the hub's offline mode,
written with lmdm_jax/convert/random_hub.py from
SAO Small's and t5-base's real configs. Only the sentencepiece model is
a small one trained here (token ids < 80 of T5's 32128: cost is the same).

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

from lmdm_jax.convert.released import SAO_SMALL, T5_BASE  # noqa: E402


def random_package(out: str) -> str:
  """Writes (unless `out` holds one) the random full-size package."""
  if os.path.isfile(os.path.join(out, "model.json")):
    return out
  from safetensors.numpy import save_file
  from lmdm_jax.convert import random_hub as fx
  from lmdm_jax.fetch import fetch
  cache = out.rstrip("/") + ".hub"
  snap = fx.snapshot(cache, "stabilityai/stable-audio-open-small", "a" * 40)
  with open(os.path.join(snap, "model_config.json"), "w") as f:
    json.dump(SAO_SMALL, f)
  save_file(fx.sao_state_dict(SAO_SMALL), os.path.join(snap,
                                                       "model.safetensors"))
  snap = fx.snapshot(cache, "google-t5/t5-base", "b" * 40)
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
