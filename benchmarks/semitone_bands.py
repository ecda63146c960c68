"""Which part of the `semitone` round trip loses the harmony and the pitch
(issue 19: chord tone and pitch accuracy >= 0.9 of raw).

Splices raw audio and the codec's round trip at a crossover frequency
(8th-order Butterworth, zero-phase) and scores each splice against the raw
clip with `lmdm bench codec --compare`'s measures (`bench.codec.
clip_metrics`: chord tone, pitch / chroma accuracy (yin), onset F1):

  round trip                 the codec as shipped
  raw below X                raw low-passed at X (what the band alone keeps)
  round trip below X + raw above X    the codec's part below X, raw above
  raw below X + round trip above X    the opposite splice
  raw above X                raw without the band below X

at X = 1250 Hz (the top of the semitone range, MIDI 87 D#6: above it the
codec has noise bands only) and X = 63.6 Hz (its bottom, half a semitone
below C2: below it one noise band). A splice that restores a measure says
the loss lives in that band.

  PYTHONPATH=. python3 benchmarks/semitone_bands.py \\
      --audio /usr/share/games/wesnoth/1.16/data/core/music --clips 32 \\
      --seconds 5 --json benchmarks/results/semitone_bands_recorded.json
"""
from __future__ import annotations

import argparse
import json
import platform

import numpy as np

CROSSOVERS = (1250.0, 63.6)
MEASURES = ("chord_tone", "pitch_accuracy", "chroma_accuracy", "onset_f1")


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--audio", required=True, help="folder of audio files")
  p.add_argument("--clips", type=int, default=32)
  p.add_argument("--seconds", type=float, default=5.0)
  p.add_argument("--json", required=True)
  args = p.parse_args(argv)
  import scipy.signal as ss
  from lmdm_jax.bench import codec as B
  from lmdm_jax.codecs import get_codec
  codec = get_codec("semitone")
  sr, fr = codec.sample_rate, codec.frame_rate
  clips = B.crops(B.list_audio_files(args.audio), args.clips, args.seconds,
                  sr)
  if not clips:
    raise SystemExit(f"no audio clips under {args.audio}")
  # Zero-phase 8th-order crossovers, designed once.
  filters = {x: tuple(ss.butter(8, x, kind, fs=sr, output="sos")
                      for kind in ("low", "high")) for x in CROSSOVERS}

  def band(sos, s):
    return ss.sosfiltfilt(sos, s, axis=-1).astype(np.float32)

  rows, raw_ct = {}, []
  for name, a in clips:
    y = np.asarray(codec.decode(codec.encode(a)))
    n = min(y.shape[1], a.shape[1])
    a, y = a[:, :n], y[:, :n]
    splices = {"round trip": y}
    for x, (lo, hi) in filters.items():
      splices.update({
          f"raw below {x:g} Hz": band(lo, a),
          f"round trip below {x:g} Hz + raw above": band(lo, y) + band(hi, a),
          f"raw below {x:g} Hz + round trip above": band(lo, a) + band(hi, y),
          f"raw above {x:g} Hz": band(hi, a)})
    for k, out in splices.items():
      m = B.clip_metrics(a, out, sr, fr)
      rows.setdefault(k, []).append([m[q] for q in MEASURES])
    raw_ct.append(B.raw_metrics(a, sr, fr)["chord_tone_raw"])
  table = {k: dict(zip(MEASURES, [float(v) for v in np.nanmean(
      np.asarray(r, np.float64), 0)])) for k, r in rows.items()}
  result = {"audio": args.audio, "clips": len(clips),
            "clip_seconds": args.seconds, "chord_tone_raw":
            float(np.mean(raw_ct)), "rows": table,
            "host": platform.processor() or platform.machine()}
  with open(args.json, "w") as f:
    json.dump(result, f, indent=1)
  print(f"{'':46s}" + "".join(f"{q:>16s}" for q in MEASURES))
  for k, v in table.items():
    print(f"{k:46s}" + "".join(f"{v[q]:16.3f}" for q in MEASURES))
  print(f"raw chord tone {result['chord_tone_raw']:.3f}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
