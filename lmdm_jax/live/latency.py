"""What a live stream costs per block, measured before it plays.

`measure_latency` runs one warm-up block per compiled step option on a copy
of the stream state and times the codec's decode, then asks the player for
its latency accounting (compute + buffer + callback period = control-to-
sound latency). `lmdm live` and `lmdm serve` both call it before playing;
`percentiles` summarises per-block timings for their reports and for
`lmdm generate`'s.
"""
from __future__ import annotations

import time
from typing import Callable, Optional

import numpy as np


def percentiles(xs) -> Optional[dict]:
  """Median, p90, max and mean of a list of seconds (None if empty)."""
  if not len(xs):
    return None
  xs = np.asarray(xs, np.float64)
  return {"median": float(np.median(xs)), "p90": float(np.percentile(xs, 90)),
          "max": float(xs.max()), "mean": float(xs.mean())}


def measure_latency(session, player, log: Callable[[str], None]) -> dict:
  """Latency accounting from a warm-up block per compiled step option.

  The warm-up blocks run on a copy of the stream state (nothing is played
  or logged); decode is timed on the block of the current step count.
  -> player.latency(...) at the current steps, plus per-option timings.
  """
  codec, k = player.codec, player.overlap
  per_steps = {}
  decode_s = None
  for steps in sorted(session.streams):
    latents, model_s = session.trial_block(steps)
    if steps == session.steps:
      frames = latents[0]
      if k:
        frames = np.concatenate([frames[:k], frames])   # decoded with overlap
      t0 = time.perf_counter()
      codec.decode(frames)
      decode_s = time.perf_counter() - t0
    per_steps[steps] = model_s
  acc = player.latency(per_steps[session.steps] + decode_s)
  acc.update(model_s_per_steps={str(s): t for s, t in per_steps.items()},
             decode_s=decode_s, steps=session.steps,
             buffer_blocks=round(acc["buffer_s"] / acc["block_s"]))
  block_s = acc["block_s"]
  log(f"block {block_s:.2f} s ({session.spec.geometry.block} latent frames);"
      f" buffer {acc['buffer_blocks']} blocks = {acc['buffer_s']:.2f} s; "
      f"callback period {player.period} samples = "
      f"{acc['period_s'] * 1e3:.0f} ms")
  for steps, m in per_steps.items():
    total = m + decode_s
    log(f"compute per block at steps {steps} (warm-up block): model "
        f"{m * 1e3:.0f} ms + decode {decode_s * 1e3:.0f} ms = "
        f"{total * 1e3:.0f} ms, real-time factor {block_s / total:.2f}x"
        + ("" if total < block_s else "  (slower than real time: "
           "underruns expected)"))
  log(f"control-to-sound latency at steps {session.steps}: compute "
      f"{acc['compute_per_block_s']:.2f} s + buffered <= "
      f"{acc['buffer_s']:.2f} s + period {acc['period_s']:.3f} s = "
      f"{acc['control_to_sound_latency_s']:.2f} s")
  return acc
