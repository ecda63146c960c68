"""How a model on the semitone codec's onset layout uses its onset channel.

For each prompt, `lmdm generate` streams --seconds of audio with the
package's defaults (its latents saved); the same statistics are computed
on the latents of raw held-out clips encoded with the package's codec:

  marks_per_s        frames with an onset mark (value > 0), per second
  marks_with_rise    share of the marks where the frame's values rise by at
                     least the codec's gate (the encoder keeps no others,
                     so 1 on encoded audio): a mark without a rise only
                     fades the output
  near_threshold     share of frames whose onset value is within 0.3 of
                     the decoder's threshold 0 (encoded audio: none; a
                     model unsure of its marks puts values there)
  audio_onsets_per_s librosa onsets of the decoded (or raw) audio per
                     second: the layout-less decoder doubles onsets, real
                     music has fewer

  PYTHONPATH=. python3 benchmarks/onset_channel.py --model lmdm_jax/assets/demo \\
      --heldout DEMO/audio/heldout --clips 16 --seconds 20 \\
      --json benchmarks/results/demo_onset_channel.json

--model may be any package; for one without an onset channel only
audio_onsets_per_s is given.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

import numpy as np

PROMPTS = ("slow Bach chorale for string ensemble",
           "fast piano folk tune in A major",
           "orchestral soundtrack, battle, recorded orchestra, Battle for "
           "Wesnoth",
           "renaissance dance for recorders")


def channel_stats(codec, z: np.ndarray) -> dict:
  """The onset-channel statistics of latents z [frames, 64] (see the
  module docstring); {} for a codec without an onset channel."""
  idx = getattr(codec, "onset_index", None)
  if idx is None:
    return {}
  v = z[:, idx]
  marks = v > 0
  rise = codec.value_rise_db(z)
  return {"marks_per_s": float(marks.mean() * codec.frame_rate),
          "marks_with_rise": (float((rise[marks] >= codec.onset_gate_db)
                                    .mean()) if marks.any() else None),
          "near_threshold": float((np.abs(v) < 0.3).mean())}


def _mean(rows, key):
  vals = [r[key] for r in rows if r.get(key) is not None]
  return float(np.mean(vals)) if vals else None


def run(model: str, heldout: str, clips: int, seconds: float,
        prompts=PROMPTS, workdir: str = "") -> dict:
  import soundfile as sf
  from lmdm_jax import package
  from lmdm_jax.bench import codec as B
  from lmdm_jax.eval import adherence as A
  codec = package.load(model, dit_params=False).make_codec()
  files = B.list_audio_files(heldout)
  if not files:
    raise FileNotFoundError(f"no audio under {heldout}")
  work = workdir or tempfile.mkdtemp(prefix="onset_channel_")
  out = {"model": model, "seconds": seconds, "generated": [], "raw": [],
         "machine": platform.machine()}
  for i, prompt in enumerate(prompts):
    wav, lat = os.path.join(work, f"g{i}.wav"), os.path.join(work, f"g{i}.npy")
    subprocess.run([sys.executable, "-m", "lmdm_jax.cli", "generate",
                    "--checkpoint", model, "--prompt", prompt, "--seconds",
                    str(seconds), "--out", wav, "--save-latents", lat,
                    "--seed", str(i), "--no-progress"], check=True,
                   capture_output=True)
    z = np.load(lat)
    z = z.reshape(-1, z.shape[-1])
    y, sr = sf.read(wav, dtype="float32")
    row = dict(channel_stats(codec, z), prompt=prompt,
               audio_onsets_per_s=len(A.onsets(y.T, sr)) / (len(y) / sr))
    out["generated"].append(row)
    print("[onset_channel] generated", row, flush=True)
  for name, a in B.crops(files, clips, min(seconds, 8.0), codec.sample_rate):
    row = dict(channel_stats(codec, codec.encode(a)), clip=name,
               audio_onsets_per_s=len(A.onsets(a, codec.sample_rate))
               / (a.shape[1] / codec.sample_rate))
    out["raw"].append(row)
  keys = ("marks_per_s", "marks_with_rise", "near_threshold",
          "audio_onsets_per_s")
  out["mean"] = {k: {s: _mean(out[s], k) for s in ("generated", "raw")}
                 for k in keys}
  print("[onset_channel] mean", json.dumps(out["mean"]), flush=True)
  return out


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--model", required=True)
  p.add_argument("--heldout", required=True)
  p.add_argument("--clips", type=int, default=16)
  p.add_argument("--seconds", type=float, default=20.0)
  p.add_argument("--json", required=True)
  args = p.parse_args(argv)
  if args.clips < 1 or args.seconds <= 0:
    p.error("--clips must be >= 1 and --seconds > 0")
  out = run(args.model, args.heldout, args.clips, args.seconds)
  with open(args.json, "w") as f:
    json.dump(out, f, indent=1)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
