"""The JAX port vs the original musicnn on real music (no TensorFlow here).

  M=/usr/share/games/wesnoth/1.16/data/core/music
  TF_USE_LEGACY_KERAS=1 /tmp/tfenv/bin/python tools/musicnn_reference.py \
      --audio $M/battle.ogg $M/love_theme.ogg --out /tmp/mref/ref.npz
  PYTHONPATH=. python3 tools/musicnn_compare.py /tmp/mref/ref.npz

For each excerpt and model: patches where the original returns NaN (its
float16 log-mel overflows, see docs/evaluation.md), whether the port with
exact=True returns NaN on the same patches, and max |port - original| of
the taggram and penultimate embedding on the other patches, for exact=True
and for the default preprocessing. Prints one JSON line per row.
"""
from __future__ import annotations

import json
import sys

import numpy as np


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  if len(argv) != 1:
    raise SystemExit("usage: musicnn_compare.py REF.npz")
  from lmdm_jax.eval import musicnn as mn
  from lmdm_jax.eval.run import load_16k
  with np.load(argv[0], allow_pickle=False) as z:
    ref = {k: z[k] for k in z.files}
  names = sorted({k.split("/")[0] for k in ref})
  for name in names:
    audio, _ = load_16k(str(ref[f"{name}/excerpt"]))
    for model in mn.MODELS:
      tg = ref[f"{name}/{model}/taggram"]
      pen = ref[f"{name}/{model}/penultimate"]
      bad = ~np.isfinite(tg).all(axis=1)
      ex = mn.get_musicnn(model, exact=True)(audio)
      de = mn.get_musicnn(model)(audio)
      ok = ~bad
      err = (lambda a, b: float(np.abs(a[ok] - b[ok]).max())
             if ok.any() else None)
      print(json.dumps({
          "file": name, "model": model, "patches": int(len(tg)),
          "nan_patches_original": int(bad.sum()),
          "exact_nan_same_patches": bool(
              (~np.isfinite(ex.taggram).all(axis=1) == bad).all()),
          "exact_taggram_err": err(ex.taggram, tg),
          "exact_penultimate_err": err(ex.penultimate, pen),
          "default_taggram_err": err(de.taggram, tg),
          "default_finite": bool(np.isfinite(de.taggram).all()),
          "top_tags_default": mn.top_tags(de.taggram.mean(0), de.tags, 3),
      }))
  return 0


if __name__ == "__main__":
  sys.exit(main())
