"""Plots of control adherence (benchmarks/sketch_eval.py JSON) and jamming
coherence vs visibility (benchmarks/jam_eval.py JSON) for docs/control.md.

  python benchmarks/plot_control.py \\
      --sketch benchmarks/results/sketch_eval_sketch_demo.json \\
      --jam benchmarks/results/jam_eval_sketch_demo.json --out docs/img
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
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  s = doc["summary"]
  tfs = doc["t_f_seconds"]
  order = np.argsort(tfs)[::-1]
  fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
  for ax, key in zip(axes, ("chroma_agreement", "onset_f1")):
    ys = [s[f"tf{doc['t_f_frames'][i]:+d}"][key] for i in order]
    ax.plot([tfs[i] for i in order], ys, "o-", label="partner visible to t_f")
    for ref, style in (("none", "--"), ("real", ":"), ("random", "-.")):
      ax.axhline(s[ref][key], ls=style, color="grey" if ref != "real"
                 else "k", label={"none": "no partner", "real":
                                  "real accompaniment",
                                  "random": "random pairing"}[ref])
    ax.set_xlabel("t_f (s past the block start)")
    ax.set_title(key.replace("_", " "), fontsize=9)
    ax.invert_xaxis()
  axes[0].legend(fontsize=7)
  ctx = {"real": "real context", "none": "zero context"}.get(
      doc.get("context", "real"), "")
  fig.suptitle(f"jamming coherence with the partner, {s['clips']} held-out "
               f"clips x {doc['blocks']} blocks, {ctx}", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--sketch", default=None)
  ap.add_argument("--jam", default=None)
  ap.add_argument("--out", default="docs/img")
  a = ap.parse_args()
  os.makedirs(a.out, exist_ok=True)
  if a.sketch:
    plot_sketch(json.load(open(a.sketch)),
                os.path.join(a.out, "sketch_adherence.png"))
  if a.jam:
    plot_jam(json.load(open(a.jam)), os.path.join(a.out,
                                                  "jam_visibility.png"))


if __name__ == "__main__":
  main()
