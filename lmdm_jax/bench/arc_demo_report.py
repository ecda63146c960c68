"""Figures of the demo-scale ARC-Forcing experiment (docs/arc-forcing.md).

  python3 benchmarks/arc_demo_report.py \
      --eval "stage 1, no CFG=EVAL_S1/results.json" \
      --eval "after ARC-Forcing=EVAL_ARC/results.json" \
      --metrics WA/metrics.jsonl \
      --out benchmarks/results/arc_demo_balanced/summary.json \
      --plot docs/img/arc_demo_balanced.png

Each --eval is LABEL=results.json of `benchmarks/demo_eval.py`; compare
only evaluations with the same clip count (FD is biased upwards on small
sets, so its value depends on the count). Collects FD / KL per step count,
drift windows and the training curves (losses, D(real) - D(fake) gap,
contrastive accuracy) into one JSON and one PNG.
"""
from __future__ import annotations

import argparse
import json
import sys


def load(path):
  with open(path) as f:
    return json.load(f)


def fd_kl(results):
  out = {}
  for name, r in results["fd_kl"].items():
    out[int(name.split("_")[1])] = {"fd": r["fd"], "kl": r["kl"],
                                    "cfg_scale": r["cfg_scale"],
                                    "model_ms": 1e3 * r[
                                        "model_latency_s_median"]}
  return out


def training_summary(rows):
  g = [r for r in rows if "g_loss" in r]
  d = [r for r in rows if "d_loss" in r]

  def mean_last(rs, key, n=10):
    rs = rs[-n:]
    return sum(r[key] for r in rs) / len(rs) if rs else None
  return {"updates": rows[-1]["step"] if rows else 0,
          "logged_rows": len(rows),
          "g_loss_first_last10": [g[0]["g_loss"], mean_last(g, "g_loss")]
          if g else None,
          "d_relativistic_first_last10": [d[0]["d_relativistic"],
                                          mean_last(d, "d_relativistic")]
          if d else None,
          "d_gap_last10": mean_last(d, "d_gap"),
          "g_grad_norm_last10": mean_last(g, "g_grad_norm"),
          "contrastive_accuracy_last10": mean_last(d,
                                                   "d_contrastive_accuracy")}


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--eval", action="append", required=True,
                 metavar="LABEL=results.json")
  p.add_argument("--metrics", required=True)
  p.add_argument("--out", required=True)
  p.add_argument("--plot", default=None)
  args = p.parse_args(argv)

  models = {}
  for item in args.eval:
    label, eq, path = item.rpartition("=")
    if not eq or not label:
      raise SystemExit(f"--eval must be LABEL=results.json, got {item!r}")
    r = load(path)
    models[label] = {"clips": r.get("clips"), "fd_kl": fd_kl(r),
                     "drift": r.get("drift"), "path": path}
  clips = {m["clips"] for m in models.values()}
  if len(clips) > 1:
    raise SystemExit(f"evaluations with different clip counts {clips} are "
                     f"not comparable by FD")
  with open(args.metrics) as f:
    rows = [json.loads(line) for line in f]
  report = {"models": models, "training": training_summary(rows)}
  with open(args.out, "w") as f:
    json.dump(report, f, indent=2)
  print(json.dumps(report["training"], indent=2))
  for label, m in models.items():
    for k, v in sorted(m["fd_kl"].items()):
      print(f"{label:28s} K={k:3d} FD {v['fd']:7.2f} KL {v['kl']:.3f} "
            f"(cfg {v['cfg_scale']})")
    if m["drift"]:
      print(f"{label:28s} drift FD "
            + ", ".join(f"{w['fd']:.1f}" for w in m["drift"]["windows"]))

  if args.plot:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    g = [r for r in rows if "g_loss" in r]
    d = [r for r in rows if "d_loss" in r]
    fig, ax = plt.subplots(1, 4, figsize=(17, 3.4))
    for label, m in models.items():
      fk = m["fd_kl"]
      ks = sorted(k for k in fk if k <= 8)
      ax[0].plot(ks, [fk[k]["fd"] for k in ks], "o-", label=label)
      if m["drift"]:
        w = m["drift"]["windows"]
        ax[1].plot([(x["start_s"] + x["end_s"]) / 2 for x in w],
                   [x["fd"] for x in w], "o-",
                   label=f"{label}, {m['drift']['steps']} steps")
    ax[0].set(xscale="log", xticks=[1, 2, 4, 8], xticklabels=[1, 2, 4, 8],
              xlabel="steps per block", ylabel="FD vs held-out (musicnn)",
              title=f"quality vs steps ({clips.pop()} clips)")
    ax[0].xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax[0].legend(fontsize=7)
    ax[1].set(xlabel="stream time (s)", ylabel="FD per window",
              title="drift over 2-minute streams")
    ax[1].legend(fontsize=7)
    ax[2].plot([r["step"] for r in g], [r["g_loss"] for r in g], label="G")
    ax[2].plot([r["step"] for r in d], [r["d_relativistic"] for r in d],
               label="D relativistic")
    ax[2].plot([r["step"] for r in d], [r["d_contrastive"] for r in d],
               label="D contrastive")
    ax[2].set(xlabel="update", ylabel="loss", title="ARC-Forcing losses")
    ax[2].legend(fontsize=7)
    ax[3].plot([r["step"] for r in d], [r["d_gap"] for r in d],
               label="D(real) - D(fake)")
    ax[3].plot([r["step"] for r in d],
               [r["d_contrastive_accuracy"] for r in d],
               label="contrastive accuracy")
    ax[3].set(xlabel="update", title="discriminator")
    ax[3].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
  return 0


if __name__ == "__main__":
  sys.exit(main())
