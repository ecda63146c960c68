"""Decoder attack rules vs onset F1 (experiment; the rules exist only at the
commit that adds this file, see docs/codecs_and_import.md).

  PYTHONPATH=. python3 benchmarks/semitone_attack_rules.py DIR CLIPS \
      '{"shipped": {}, "M1": {"merge_db": 1}, "G1": {"gate_db": 1}}' SECONDS

Encodes CLIPS crops (bench.codec.crops) of the audio under DIR once, decodes
them with each variant's SemitoneCodec keyword arguments, and prints onset
F1 (mean per clip), pooled recall / precision, the number of decoded onsets
and of "doubles" (two onsets < 60 ms apart) beside the raw clips'.
"""
import json
import sys

import numpy as np

from lmdm_jax.bench import codec as B
from lmdm_jax.codecs.semitone import SemitoneCodec
from lmdm_jax.eval import adherence as A


def doubles(t) -> int:
  t = np.asarray(t)
  return int(np.sum(np.diff(t) < 0.06)) if len(t) > 1 else 0


def main(argv) -> int:
  root, n, variants, secs = argv[0], int(argv[1]), json.loads(argv[2]), \
      float(argv[3])
  sr = 44100
  clips = B.crops(B.list_audio_files(root), n, secs, sr)
  enc = SemitoneCodec()
  latents = [enc.encode(a) for _, a in clips]
  ref = [A.onsets(a, sr) for _, a in clips]
  print(f"raw onsets {sum(map(len, ref))}, doubles "
        f"{sum(doubles(r) for r in ref)}")
  for name, kw in variants.items():
    codec = SemitoneCodec(**kw)
    f1, hits, n_ref, n_gen, dbl = [], 0, 0, 0, 0
    for (_, a), z, r in zip(clips, latents, ref):
      g = A.onsets(codec.decode(z), sr)
      f1.append(A.event_f1(r, g, 0.05))
      hits += A.match_events(r, g, 0.05)
      n_ref, n_gen, dbl = n_ref + len(r), n_gen + len(g), dbl + doubles(g)
    print(f"{name:10s} F1 {np.mean(f1):.3f} recall {hits / n_ref:.3f} "
          f"precision {hits / n_gen:.3f} onsets {n_gen} doubles {dbl}")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
