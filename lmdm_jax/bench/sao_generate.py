"""`lmdm generate` on a package, split into T5, DiT and Oobleck decode.

Measures, on whatever machine runs it, for any model package (the fetched
SAO-Small, or a random one at its shape: benchmarks/sao_generate.py
--random-package makes one with the toy hub fixture's helpers at full
size):

  t5       the package's prompt encoder (`Pretrained.text_encoder()`:
           T5 + the seconds_total token), once per prompt: the first
           call (compile + run) and the median over distinct prompts;
  generate `lmdm_jax.live.generate.generate` (what `lmdm generate` runs)
           for --blocks blocks into a WAV: per block the DiT's time
           (`Stream.block`: conditioning, K network calls, cache slide)
           and the codec's decode (for Oobleck its exact streaming
           decoder: one block of latents in, one block of audio out),
           medians, and the real-time factor = block audio seconds /
           median (DiT + decode) seconds (> 1 keeps up live). The session's
           start (`compile_s`: jit compiles and the prompt's T5 call) is
           reported apart.

Weights do not change the cost. Cost per block is flat after the first
(BC caches each finished block once; the streaming decoder compiles for
its first and steady-state windows), so a few blocks give a stable
median. The JSON also holds the host's load average before and after: on
a shared machine the times scale with it.

  PYTHONPATH=. python3 -m lmdm_jax.bench.sao_generate --package PKG \\
      --blocks 4 --json benchmarks/results/sao_generate_cpu.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

PROMPTS = ("ambient piano at 80 bpm with pads",
           "fast drums and bass at 170 bpm",
           "slow string choir in D minor",
           "lo-fi hip hop beat with vinyl crackle",
           "bright synth arpeggios at 128 bpm")


def time_t5(pkg, prompts=PROMPTS) -> dict:
  """First call (compile + run) and the median of the others, seconds."""
  import numpy as np
  enc = pkg.text_encoder()
  times = []
  shape = None
  for p in prompts:
    t0 = time.perf_counter()
    tok = np.asarray(enc.encode_one(p))
    times.append(time.perf_counter() - t0)
    shape = list(tok.shape)
  return {"first_s": times[0],
          "per_prompt_s_median": statistics.median(times[1:] or times),
          "prompts": len(prompts), "tokens_shape": shape,
          "encoder": pkg.text.get("encoder", "")}


def run(package: str, blocks: int = 4, steps=None, prompts=PROMPTS,
        out_dir=None, log=print) -> dict:
  """T5 and `generate` figures for `package` (see the module doc)."""
  if blocks < 2:
    raise ValueError(f"--blocks must be >= 2 (the first block includes "
                     f"the fill), got {blocks}")
  import jax
  from lmdm_jax import package as package_lib
  from lmdm_jax.bench.arc_memory import device
  from lmdm_jax.live.generate import generate
  from lmdm_jax.model.init import count_params

  load_start = os.getloadavg()
  pkg = package_lib.load(package)
  t5 = time_t5(pkg, prompts)
  log(f"[sao_generate] t5: first {t5['first_s']:.2f} s, then "
      f"{t5['per_prompt_s_median']:.3f} s per prompt")
  block_s = pkg.geometry.block / float(pkg.frame_rate)
  with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
    fig = generate(prompts[0], blocks * block_s, os.path.join(tmp, "g.wav"),
                   checkpoint=package, steps=steps, progress=False,
                   log=lambda s: None)
  lat = fig["latency_s"]
  dit, dec = lat["model"]["median"], lat["decode"]["median"]
  res = {
      "benchmark": "sao_generate", **device(), "package": package,
      "dit_params": count_params(pkg.params["dit"]),
      "dit": {"width": pkg.dit.embed_dim, "depth": pkg.dit.depth,
              "heads": pkg.dit.num_heads,
              "latent_channels": pkg.dit.io_channels},
      "geometry": {"mode": pkg.geometry.mode,
                   "context": pkg.geometry.context,
                   "block": pkg.geometry.block,
                   "window_chunks": pkg.geometry.window_chunks},
      "cond_tokens": pkg.cond_tokens, "codec": pkg.codec["name"],
      "t5": t5, "blocks": fig["blocks"], "block_s": fig["block_s"],
      "steps": fig["steps"], "cfg_scale": fig["cfg_scale"],
      "sampler": fig["sampler"],
      "dit_s_per_block_median": dit, "decode_s_per_block_median": dec,
      "total_s_per_block_median": lat["total"]["median"],
      "latency_s": lat, "real_time_factor": fig["real_time_factor"],
      "real_time_factor_dit_only": fig["real_time_factor_model_only"],
      "session_start_s": fig["compile_s"], "generate_s": fig["generate_s"],
      "jax_devices": jax.device_count(),
      # The machine's load (1, 5, 15 min) around the run: on a shared host
      # the figures scale with it.
      "load_avg_start": list(load_start),
      "load_avg_end": list(os.getloadavg()),
  }
  log(f"[sao_generate] per block ({fig['block_s']:.2f} s of audio, "
      f"{fig['steps']} steps): DiT {dit:.2f} s, decode {dec:.2f} s; "
      f"real-time factor {fig['real_time_factor']:.3f}")
  return res


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--package", required=True, help="a model package dir")
  p.add_argument("--blocks", type=int, default=4,
                 help="blocks generated (medians over them)")
  p.add_argument("--steps", type=int, default=None,
                 help="denoising steps (default: the package's)")
  p.add_argument("--json", default=None)
  a = p.parse_args(argv)
  res = run(a.package, a.blocks, a.steps)
  if a.json:
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
      json.dump(res, f, indent=1)
  else:
    print(json.dumps(res, indent=1))
  return res


if __name__ == "__main__":
  main()
