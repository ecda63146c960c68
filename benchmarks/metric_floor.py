"""How far issue 19's round-trip measures fall for changes nobody hears:
the floor of pitch accuracy and onset F1 on mixes.

Scores raw clips against altered copies of themselves with
`lmdm bench codec --compare`'s measures (`bench.codec.clip_metrics`):
pitch / chroma accuracy with the bench's tracker (yin, every frame above
-50 dB counts as voiced) and with pyin (its own voicing: only periodic
frames count), onset F1 (50 ms) and chord tone (÷ raw). Alterations:

  round trip            the shipped `semitone` layout (sub pitch)
  magnitudes + GL phase the raw STFT magnitudes (2048 / 512) with
                        Griffin-Lim phase (32 iterations): every partial
                        where it was, only the phase new — what any
                        magnitude codec's decoder at best returns
  all-pass 300 Hz       a 2nd-order all-pass (r 0.9): the phase turns
                        around 300 Hz, the magnitude stays exactly 1
  shift 256 samples     the clip 5.8 ms later (an eighth of a latent frame),
                        scored against the clip from 256 samples on, so
                        both start inside the music
  +1 dB above 1 kHz     a first-order shelf
  noise -40 dB          white noise 40 dB below the clip's level

A measure that a phase turn or a 6 ms shift moves by 0.1-0.3 cannot ask a
codec, which makes its own phase, for 0.9 of raw.

  PYTHONPATH=. python3 benchmarks/metric_floor.py --audio DEMO/audio/heldout \\
      --clips 32 --seconds 8 --json benchmarks/results/metric_floor_heldout.json
"""
from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

MEASURES = ("chord_tone", "pitch_accuracy", "chroma_accuracy", "onset_f1")
SHIFT = 256


def _alterations(codec, sr: int, seed: int = 0):
  import librosa
  import scipy.signal as ss
  rng = np.random.RandomState(seed)

  def griffinlim(x):
    return np.stack([librosa.griffinlim(
        np.abs(librosa.stft(c, n_fft=2048, hop_length=512)), n_iter=32,
        hop_length=512, n_fft=2048, length=x.shape[-1],
        random_state=0) for c in x])

  def allpass(x, hz=300.0, r=0.9):
    a = [1.0, -2 * r * np.cos(2 * np.pi * hz / sr), r * r]
    return ss.lfilter(a[::-1], a, x, axis=-1)

  def shelf(x, db=1.0):
    hi = ss.sosfilt(ss.butter(1, 1000.0, "high", fs=sr, output="sos"), x,
                    axis=-1)
    return x + (10 ** (db / 20) - 1) * hi

  def noise(x, db=-40.0):
    level = np.sqrt(np.mean(x.astype(np.float64) ** 2))
    return x + rng.normal(0.0, 1.0, x.shape) * level * 10 ** (db / 20)

  return {
      "round trip (semitone, sub layout)":
          lambda x: np.asarray(codec.decode(codec.encode(x)))[:, :x.shape[-1]],
      "raw magnitudes + Griffin-Lim phase": griffinlim,
      "all-pass at 300 Hz (phase only)": allpass,
      f"shifted {SHIFT} samples": None,         # see _pair
      "+1 dB above 1 kHz": shelf,
      "white noise 40 dB down": noise,
  }


def _pair(name, f, a):
  """(reference, altered) for alteration `name` of clip a [2, S]."""
  if f is None:                    # the shift: a[S:] heard SHIFT samples late
    return a[:, SHIFT:], a[:, :-SHIFT]
  return a, np.asarray(f(a), np.float32)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--audio", required=True, help="folder of audio files")
  p.add_argument("--clips", type=int, default=32)
  p.add_argument("--seconds", type=float, default=8.0)
  p.add_argument("--pitch-methods", default="yin,pyin")
  p.add_argument("--json", required=True)
  args = p.parse_args(argv)
  from lmdm_jax.bench import codec as B
  from lmdm_jax.bench.stream import cpu_name
  from lmdm_jax.codecs import get_codec
  from lmdm_jax.codecs.semitone import SUB_PITCH_LAYOUT
  from lmdm_jax.data import features as F
  methods = [m for m in args.pitch_methods.split(",") if m]
  codec = get_codec("semitone", **SUB_PITCH_LAYOUT)
  sr, fr = codec.sample_rate, codec.frame_rate
  clips = B.crops(B.list_audio_files(args.audio), args.clips, args.seconds,
                  sr)
  if not clips:
    raise SystemExit(f"no audio clips under {args.audio}")
  alterations = _alterations(codec, sr)
  rows, raw_ct, voiced = {}, [], {m: [] for m in methods}
  t0 = time.time()
  for i, (name, a) in enumerate(clips):
    frames = int(a.shape[-1] / sr * fr)
    ref = {m: F.pitch(a, sr, fr, frames, method=m) for m in methods}
    for m in methods:
      voiced[m].append(float(np.mean(ref[m][1])))
    raw_ct.append(B.raw_metrics(a, sr, fr)["chord_tone_raw"])
    for k, f in alterations.items():
      r, y = _pair(k, f, a)
      row = rows.setdefault(k, {})
      for j, m in enumerate(methods):
        q = B.clip_metrics(r, y, sr, fr, pitch_method=m,
                           raw_pitch=ref[m] if r is a else None)
        if j == 0:
          for key in ("chord_tone", "onset_f1"):
            row.setdefault(key, []).append(q[key])
        for key in ("pitch_accuracy", "chroma_accuracy"):
          row.setdefault(f"{key}_{m}", []).append(q[key])
    print(f"clip {i + 1}/{len(clips)} ({time.time() - t0:.0f} s)",
          flush=True)
  table = {k: {q: float(np.nanmean(v)) for q, v in r.items()}
           for k, r in rows.items()}
  ct_raw = float(np.mean(raw_ct))
  for r in table.values():
    r["chord_tone_of_raw"] = r["chord_tone"] / ct_raw
  result = {"audio": args.audio, "clips": len(clips),
            "clip_seconds": args.seconds, "chord_tone_raw": ct_raw,
            "voiced_fraction": {m: float(np.mean(v))
                                for m, v in voiced.items()},
            "rows": table, "host": platform.machine(), "cpu": cpu_name(),
            "seconds_taken": time.time() - t0}
  with open(args.json, "w") as f:
    json.dump(result, f, indent=1)
  cols = ["chord_tone_of_raw", "onset_f1"] + [
      f"{q}_{m}" for m in methods for q in ("pitch_accuracy",
                                             "chroma_accuracy")]
  print(f"{'':40s}" + "".join(f"{c[:18]:>19s}" for c in cols))
  for k, v in table.items():
    print(f"{k:40s}" + "".join(f"{v[c]:19.3f}" for c in cols))
  print(f"raw chord tone {ct_raw:.3f}; voiced fraction "
        f"{result['voiced_fraction']}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
