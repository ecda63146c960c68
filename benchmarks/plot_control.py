"""Plots of control adherence (benchmarks/sketch_eval.py JSON) and jamming
coherence vs visibility (benchmarks/jam_eval.py JSON) for docs/control.md.

  python benchmarks/plot_control.py \\
      --sketch benchmarks/results/sketch_eval_sketch_demo.json \\
      --jam benchmarks/results/jam_eval_sketch_demo.json --out docs/img \
      [--jam-name jam_visibility.png]
"""
from __future__ import annotations

import argparse
import json
import os

import numpy as np

SKETCH_KEYS = ("pitch_accuracy", "chroma_accuracy", "cqt_topk_match",
               "onset_f1", "loudness_correlation")


def plot_sketch(doc: dict, path: str) -> None:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  s = doc["summary"]["all"]
  x = np.arange(len(SKETCH_KEYS))
  fig, ax = plt.subplots(figsize=(7, 3.2))
  for j, (cond, label) in enumerate((("controls", "controls given"),
                                     ("none", "controls absent"))):
    ax.bar(x + (j - 0.5) * 0.38, [s[cond][k] for k in SKETCH_KEYS], 0.38,
           label=label)
  ax.set_xticks(x, [k.replace("_", "\n") for k in SKETCH_KEYS], fontsize=8)
  ax.axhline(0, color="k", lw=0.5)
  ax.set_ylabel("adherence to the held-out clip's features")
  ax.set_title(f"sketch control adherence, {doc['summary']['all']['clips']} "
               f"held-out clips x {doc['blocks']} blocks", fontsize=9)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_jam(doc: dict, path: str) -> None:
  """Held-out loss with the partner (relative to none), the generation's
  latent correlation with the real accompaniment, chord-tone agreement and
  onset F1 vs t_f, with their references."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  s = doc["summary"]
  tfs = doc["t_f_seconds"]
  order = np.argsort(tfs)[::-1]
  xs = [tfs[i] for i in order]
  conds = [f"tf{doc['t_f_frames'][i]:+d}" for i in order]
  panels = [k for k in ("loss", "latent_r", "chord_tone", "onset_f1")
            if k == "loss" and "loss" in s or k != "loss" and "none" in s]
  fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.3))
  axes = np.atleast_1d(axes)
  for ax, key in zip(axes, panels):
    if key == "loss":
      base = s["loss"]["none"]
      rel = lambda c: 100.0 * (s["loss"][c] / base - 1.0)
      ax.plot(xs, [rel(c) for c in conds], "o-",
              label="own partner, visible to t_f")
      ax.axhline(0.0, ls="--", color="grey", label="no partner")
      ax.axhline(rel("random"), ls="-.", color="grey",
                 label="another piece's partner")
      ax.set_title("held-out loss vs no partner (%)", fontsize=9)
    else:
      ax.plot(xs, [s[c][key] for c in conds], "o-",
              label="partner visible to t_f")
      refs = (("none", "--", "grey", "no partner"),
              ("real", ":", "k", "real acc. through the codec"),
              ("real_raw", "-", "k", "real acc. (raw audio)"),
              ("random", "-.", "grey", "random pairing"))
      for ref, style, colour, label in refs:
        if key in s.get(ref, {}):
          ax.axhline(s[ref][key], ls=style, color=colour, label=label)
      ax.set_title({"latent_r": "latent r with the real accompaniment"}.get(
          key, key.replace("_", " ")), fontsize=9)
    ax.set_xlabel("t_f (s past the block start)")
    ax.invert_xaxis()
    ax.legend(fontsize=6)
  ctx = {"real": "real context", "none": "zero context"}.get(
      doc.get("context", "real"), "")
  fig.suptitle(f"jamming, {s['clips']} held-out clips x {doc['blocks']} "
               f"blocks, {ctx}", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--sketch", default=None)
  ap.add_argument("--jam", default=None)
  ap.add_argument("--out", default="docs/img")
  ap.add_argument("--jam-name", default="jam_visibility.png",
                  help="file name of the jamming plot in --out")
  a = ap.parse_args()
  os.makedirs(a.out, exist_ok=True)
  if a.sketch:
    plot_sketch(json.load(open(a.sketch)),
                os.path.join(a.out, "sketch_adherence.png"))
  if a.jam:
    plot_jam(json.load(open(a.jam)), os.path.join(a.out, a.jam_name))


if __name__ == "__main__":
  main()
