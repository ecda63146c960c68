"""`lmdm export`: a training run's checkpoint -> a model package.

  lmdm export --config configs/demo.py --workdir W --data-dir DEMO/tfds \\
      --out lmdm_jax/assets/demo [--step N] [--cfg 3] [--steps 8]

Takes the EMA parameters when the run kept them (else the raw ones) of the
latest (or --step) checkpoint, the text-encoder spec with the vocabulary of
the training captions (so `lmdm generate` can name the prompt words the
model never saw), the codec and generation defaults; a model fine-tuned
from a converted package (T5, Oobleck, seconds_total) keeps that
package's text encoder, codec and conditioners (--base, or the run's
init package). See lmdm_jax/package.py for the layout.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Optional

# Which package an export keeps the parts of: lmdm_jax/package.py (the data
# pipeline's codec check asks it too); importable from here as before.
from lmdm_jax.package import WEIGHTS_FREE_CODECS, base_package  # noqa: F401


def export(cfg, workdir: str, out: str, data_dir: str = "",
           step=None, defaults=None, command: str = "",
           base: Optional[str] = None) -> dict:
  import jax
  from lmdm_jax import pretrained
  from lmdm_jax.configs import resolve_init_model
  from lmdm_jax.train import checkpoint, objective, parallel
  from lmdm_jax.train.loop import select_devices

  resolve_init_model(cfg)
  codec = dict(cfg.get("codec", {"name": "mel", "kwargs": {}}))
  codec = {"name": str(codec["name"]), "kwargs": dict(codec.get("kwargs",
                                                                {}))}
  based_on = base_package(cfg, base)
  if data_dir:                 # before the checkpoint loads: nothing lost
    from lmdm_jax import package
    from lmdm_jax.data import reading
    used = (package.read_manifest(based_on)["codec"] if based_on
            else codec)
    name = used["name"]
    reading.check_codec(data_dir, str(cfg.data.name), name,
                         f"the package (codec {name!r}, "
                         + (f"from {based_on})" if based_on else
                            "from config.codec)"),
                         dict(used.get("kwargs", {}) or {}))

  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "ckpt"), 1, 1000)
  steps = ckpt.all_steps()
  if not steps:
    raise FileNotFoundError(f"no checkpoint under {workdir}/ckpt")
  step = max(steps) if step is None else int(step)
  if step not in steps:
    raise ValueError(f"no checkpoint at step {step}; have {sorted(steps)}")
  mesh = parallel.make_mesh(select_devices(1))
  abstract = checkpoint.abstract_like(objective.abstract_state(cfg),
                                      parallel.replicated(mesh))
  state, _ = ckpt.restore(step, abstract)
  params, ema = objective.exported_params(cfg, state)
  ckpt.close()
  params = jax.device_get(ema if ema is not None else params)

  text = {"encoder": str(cfg.get("text", {}).get("encoder", "")),
          "dim": int(cfg.model.cond_token_dim),
          "max_tokens": int(cfg.cond_tokens)}
  if data_dir:
    from lmdm_jax.data.pipeline import tfds_source
    from lmdm_jax.text.hashed import vocabulary_of
    src = tfds_source(data_dir, str(cfg.data.name))
    caps = []
    for i in range(len(src)):
      c = src[i]["caption"]
      caps.append(c.decode() if isinstance(c, bytes) else str(c))
    text["vocabulary"] = vocabulary_of(caps)
    text["training_captions"] = len(caps)
  meta = {"config": str(cfg.get("config_path", "")), "step": int(step),
          "ema": ema is not None,
          "exported": time.strftime("%Y-%m-%d %H:%M:%S"),
          "command": command, "data_dir": data_dir,
          "params": int(sum(x.size for x in jax.tree.leaves(params)))}
  metrics = os.path.join(workdir, "metrics.jsonl")
  if os.path.exists(metrics):
    with open(metrics) as f:
      rows = [json.loads(line) for line in f if line.strip()]
    meta["final_loss"] = rows[-1].get("loss") if rows else None
    last = {}
    for r in rows:
      last.update(r)
    players = {k: v for k, v in last.items() if k[:2] in ("g_", "d_")}
    if players:                          # ARC-Forcing: both players'
      meta["final_metrics"] = players
  pretrained.save(out, dit_params=params, cfg=cfg, text=text, codec=codec,
                  defaults=dict(defaults or {"steps": 8, "cfg_scale": 1.0,
                                             "sampler": "pingpong"}),
                  meta=meta, base=based_on)
  return meta


def _cli(args) -> int:
  from lmdm_jax.configs import load_config
  from lmdm_jax.train.cli import apply_overrides
  cfg = apply_overrides(load_config(args.config), args.overrides)
  defaults = {"steps": args.steps, "cfg_scale": args.cfg,
              "sampler": args.sampler}
  meta = export(cfg, args.workdir, args.out, args.data_dir, args.step,
                defaults, command=" ".join(["lmdm"] + sys.argv[1:]),
                base=args.base)
  print(json.dumps(meta, indent=2))
  return 0


def add_arguments(e: argparse.ArgumentParser) -> None:
  """`lmdm export`'s arguments (registered in lmdm_jax/cli.py, which also
  takes `--config.a.b=v` overrides)."""
  e.add_argument("--config", required=True)
  e.add_argument("--workdir", required=True)
  e.add_argument("--out", required=True)
  e.add_argument("--data-dir", default="",
                 help="the training TFDS dir (for the caption vocabulary)")
  e.add_argument("--step", type=int, default=None)
  e.add_argument("--base", default=None, metavar="PACKAGE",
                 help="keep this package's text encoder (T5), codec "
                 "(Oobleck) and conditioners (default: the run's init "
                 "package when it conditions on T5 or uses Oobleck)")
  e.add_argument("--steps", type=int, default=8)
  e.add_argument("--cfg", type=float, default=1.0)
  e.add_argument("--sampler", default="pingpong",
                 choices=("euler", "pingpong"))
