"""Figures of the demo-scale ARC-Forcing experiment (docs/arc-forcing.md).

  python3 benchmarks/arc_demo_report.py --stage1 EVAL_S1/results.json \
      --stage1-nocfg EVAL_S1_NOCFG/results.json --stage1-extra benchmarks/results/demo_eval/results.json \
      --arc EVAL_ARC/results.json --metrics WA/metrics.jsonl \
      --out benchmarks/results/arc_demo.json --plot docs/img/arc_demo.png

Collects FD / KL per step count of both models (stage 1 with its CFG,
the post-trained model without guidance, as ARC rollouts run), their drift
windows, and the training curves, into one JSON and one PNG.
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


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--stage1", required=True)
  p.add_argument("--stage1-extra", default=None,
                 help="an earlier stage-1 results.json (e.g. 8 and 50 steps)")
  p.add_argument("--stage1-nocfg", default=None,
                 help="stage 1 evaluated without guidance (the control)")
  p.add_argument("--arc", required=True)
  p.add_argument("--metrics", required=True)
  p.add_argument("--out", required=True)
  p.add_argument("--plot", default=None)
  args = p.parse_args(argv)

  s1, arc = load(args.stage1), load(args.arc)
  s1_fd = fd_kl(s1)
  if args.stage1_extra:
    for k, v in fd_kl(load(args.stage1_extra)).items():
      s1_fd.setdefault(k, v)
  rows = []
  with open(args.metrics) as f:
    for line in f:
      rows.append(json.loads(line))
  g = [r for r in rows if "g_loss" in r]
  d = [r for r in rows if "d_loss" in r]
  report = {
      "stage1": {"fd_kl": s1_fd, "drift": s1.get("drift")},
      "arc": {"fd_kl": fd_kl(arc), "drift": arc.get("drift")},
      "stage1_nocfg": ({"fd_kl": fd_kl(load(args.stage1_nocfg)),
                        "drift": load(args.stage1_nocfg).get("drift")}
                       if args.stage1_nocfg else None),
      "training": {
          "updates": len(rows), "g_updates": len(g), "d_updates": len(d),
          "g_loss_first_last": [g[0]["g_loss"], g[-1]["g_loss"]] if g else
          None,
          "d_loss_first_last": [d[0]["d_loss"], d[-1]["d_loss"]] if d else
          None,
          "contrastive_accuracy_last10": (
              sum(r["d_contrastive_accuracy"] for r in d[-10:]) /
              max(len(d[-10:]), 1)) if d else None,
          "step_s_median": sorted(r["step_s"] for r in rows)[len(rows) // 2]
          if rows else None}}
  with open(args.out, "w") as f:
    json.dump(report, f, indent=2)
  print(json.dumps(report["training"], indent=2))
  for name in ("stage1", "stage1_nocfg", "arc"):
    if not report[name]:
      continue
    for k, v in sorted(report[name]["fd_kl"].items()):
      print(f"{name:7s} K={k:3d} FD {v['fd']:7.2f} KL {v['kl']:.3f} "
            f"(cfg {v['cfg_scale']})")

  if args.plot:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.4))
    for name, label in (("stage1", "stage 1 (CFG 3)"),
                        ("stage1_nocfg", "stage 1 (no CFG)"),
                        ("arc", "after ARC-Forcing (no CFG)")):
      if not report[name]:
        continue
      fk = report[name]["fd_kl"]
      ks = sorted(k for k in fk if k <= 8)
      ax[0].plot(ks, [fk[k]["fd"] for k in ks], "o-", label=label)
      dr = report[name]["drift"]
      if dr:
        w = dr["windows"]
        ax[1].plot([(x["start_s"] + x["end_s"]) / 2 for x in w],
                   [x["fd"] for x in w], "o-",
                   label=f"{label}, {dr['steps']} steps")
    if 50 in report["stage1"]["fd_kl"]:
      ax[0].axhline(report["stage1"]["fd_kl"][50]["fd"], color="gray",
                    ls="--", label="stage 1, 50 steps, CFG 3")
    ax[0].set(xscale="log", xticks=[1, 2, 4, 8], xticklabels=[1, 2, 4, 8],
              xlabel="steps per block", ylabel="FD vs held-out (musicnn)",
              title="quality vs steps")
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
    fig.tight_layout()
    fig.savefig(args.plot, dpi=110)
  return 0


if __name__ == "__main__":
  sys.exit(main())
