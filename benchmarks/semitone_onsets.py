"""Where the `semitone` codec's onsets go (issue 19: onset F1 >= 0.8 of raw).

Round trips held-out clips once through the encoder and decodes them with
variants of the decoder's attack (`attack_db`: the rise that triggers a
sharp attack; `attack`: its length in samples; 0 = linear envelopes), then
scores librosa onsets of each decode against the raw clip's
(`eval.adherence.event_f1`, 50 ms): F1 per clip (mean), pooled recall and
precision, and for the shipped decoder the signed offset of the nearest
decoded onset to each raw one (within 100 ms).

  PYTHONPATH=. python3 benchmarks/semitone_onsets.py \
      --heldout DEMO/audio/heldout --clips 32 \
      --json benchmarks/results/semitone_onsets.json

The clips are `lmdm bench codec --compare`'s (`bench.codec.crops`: 8 s,
crop 0 of every file first).
"""
from __future__ import annotations

import argparse
import json
import platform

import numpy as np

VARIANTS = {"shipped (attack 64, 1 dB)": {},
            "attack_db 2": {"attack_db": 2.0},
            "attack_db 3": {"attack_db": 3.0},
            "attack_db 6": {"attack_db": 6.0},
            "attack 32": {"attack": 32},
            "attack 256": {"attack": 256},
            "linear (attack 0)": {"attack": 0}}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--heldout", required=True)
  p.add_argument("--clips", type=int, default=32)
  p.add_argument("--seconds", type=float, default=8.0)
  p.add_argument("--json", required=True)
  args = p.parse_args(argv)
  from lmdm_jax.bench import codec as B
  from lmdm_jax.codecs import get_codec
  from lmdm_jax.eval import adherence as A
  sr = 44100
  clips = B.crops(B.list_audio_files(args.heldout), args.clips,
                  args.seconds, sr)
  if not clips:
    raise SystemExit(f"no clips under {args.heldout}")
  encoder = get_codec("semitone")
  latents = [encoder.encode(a) for _, a in clips]
  ref = [A.onsets(a, sr) for _, a in clips]
  out = {"heldout": args.heldout, "clips": len(clips),
         "seconds": args.seconds, "tolerance_s": 0.05, "variants": {},
         "machine": platform.machine()}
  offsets = []
  for name, kwargs in VARIANTS.items():
    codec = get_codec("semitone", **kwargs)
    f1, hits, n_ref, n_gen = [], 0, 0, 0
    for z, r in zip(latents, ref):
      g = A.onsets(codec.decode(z), sr)
      f1.append(A.event_f1(r, g, 0.05))
      hits += A.match_events(r, g, 0.05)
      n_ref, n_gen = n_ref + len(r), n_gen + len(g)
      if not kwargs and len(g):
        d = g[None] - np.asarray(r)[:, None]
        near = d[np.arange(len(r)), np.argmin(np.abs(d), 1)]
        offsets += list(near[np.abs(near) < 0.1])
    out["variants"][name] = {
        "kwargs": kwargs, "onset_f1": float(np.mean(f1)),
        "recall": hits / max(n_ref, 1), "precision": hits / max(n_gen, 1),
        "raw_onsets": n_ref, "decoded_onsets": n_gen}
    print(f"{name:28s} F1 {np.mean(f1):.3f} recall {hits / max(n_ref, 1):.3f}"
          f" precision {hits / max(n_gen, 1):.3f}", flush=True)
  o = 1000 * np.asarray(offsets)
  out["shipped_offsets_ms"] = {
      "n": int(o.size), "median": float(np.median(o)),
      "p25": float(np.percentile(o, 25)), "p75": float(np.percentile(o, 75)),
      "within_50ms": float(np.mean(np.abs(o) <= 50))}
  print("shipped decoder, nearest decoded onset - raw onset (ms):",
        out["shipped_offsets_ms"])
  with open(args.json, "w") as f:
    json.dump(out, f, indent=1)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
