"""Sketch-control adherence of a control model on held-out audio (JSON).

For each held-out clip: the codec's latents of its first s frames are the
context; the controls extracted from the *whole* clip (loudness,
brightness, pitch, top-k CQT: whatever the model has) are given block by
block over each block's window [context | block]; the model continues for
`--blocks` blocks with the clip's caption as prompt. The generated audio's
features are compared with the clip's own over the generated span
(lmdm_jax/eval/adherence.py: pitch / chroma accuracy, top-k CQT match,
onset F1, loudness correlation; the reference is the clip through the
model's codec, and since a codec's layout moves its onsets, each row also
has `onset_f1_raw` against the raw clip's onsets and the onset rates).
The same clips are generated again with every control absent (the
unconditioned baseline, same model, same seeds).

  python benchmarks/sketch_eval.py --model PKG --audio DEMO/audio/heldout/folk \
      --audio DEMO/audio/heldout/bach_chorales --clips 6 --blocks 8 \
      --json benchmarks/results/sketch_eval.json
"""
from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np


def clips(dirs, n, seconds, sample_rate):
  """Up to n (name, caption, audio [2, samples]) clips of `seconds`: files
  in sorted order, consecutive non-overlapping segments of each."""
  import soundfile as sf
  from scipy.signal import resample_poly
  out = []
  for d in dirs:
    files = sorted(f for f in os.listdir(d) if f.endswith((".flac", ".wav",
                                                            ".ogg")))
    for f in files:
      x, sr = sf.read(os.path.join(d, f), dtype="float32", always_2d=True)
      x = x.T
      if x.shape[0] == 1:
        x = np.repeat(x, 2, 0)
      if sr != sample_rate:
        g = np.gcd(sr, sample_rate)
        x = resample_poly(x, sample_rate // g, sr // g, axis=1)
      cap_path = os.path.join(d, os.path.splitext(f)[0] + ".txt")
      cap = open(cap_path).read().strip() if os.path.exists(cap_path) else ""
      n_seg = x.shape[1] // int(seconds * sample_rate)
      for k in range(n_seg):
        seg = x[:, k * int(seconds * sample_rate):
                (k + 1) * int(seconds * sample_rate)]
        if np.abs(seg).max() > 1e-3:
          out.append((f"{os.path.basename(d)}/{f}#{k}", cap, seg))
        if len([c for c in out if c[0].startswith(
            f"{os.path.basename(d)}/")]) >= n:
          break
      if len([c for c in out if c[0].startswith(
          f"{os.path.basename(d)}/")]) >= n:
        break
  return out


def run(model, dirs, n_clips, blocks, seeds=(0,), pitch_method="yin",
        log=print) -> dict:
  """seeds: one generation per clip and seed (rows carry "seed")."""
  seeds = [int(x) for x in seeds]
  if not seeds or len(set(seeds)) != len(seeds):
    raise ValueError(f"seeds must be distinct and at least one, got {seeds}")
  from lmdm_jax import pretrained
  from lmdm_jax.data import controls as extract
  from lmdm_jax.eval import adherence as A
  from lmdm_jax.streaming.sampler import Stream
  from lmdm_jax.streaming.state import StreamSpec, make_controls

  pkg = pretrained.load(model)
  names = [n for n, _ in pkg.dit.controls if n != "partner"]
  if not names:
    raise ValueError(f"{model} has no sketch controls (DiTConfig.controls)")
  codec = pkg.make_codec()
  g = pkg.geometry
  d = pkg.defaults
  steps, cfg_scale = int(d.get("steps", 8)), float(d.get("cfg_scale", 1.0))
  spec = StreamSpec(pkg.dit, g, batch=1, cond_tokens=pkg.cond_tokens,
                    steps=steps, sampler=d.get("sampler", "pingpong"),
                    cfg=cfg_scale != 1.0)
  stream = Stream(spec)
  params = jax.tree.map(np.asarray, pkg.params["dit"])
  encoder = pkg.text_encoder()
  total = g.context + blocks * g.block
  seconds = total * codec.hop / codec.sample_rate + 0.5
  rows = []
  for name, caption, audio in clips(dirs, n_clips, seconds,
                                    codec.sample_rate):
    z = np.asarray(codec.encode(audio))[:total]
    feats = extract.extract(names, audio, codec.sample_rate,
                            codec.frame_rate, total,
                            pitch_method=pitch_method,
                            frame_centre=codec.frame_centre)
    tokens = np.asarray(encoder.encode_one(caption or "music"))[None]
    ref = np.asarray(codec.decode(z[g.context:]))   # same codec path
    # Onsets also against the raw clip: the codec's own onsets differ by
    # layout (semitone's sub-pitch layout attacks at every rising frame,
    # its onset layout at marked ones), which moves the codec-path F1.
    span = blocks * g.block * codec.hop
    raw = audio[:, g.context * codec.hop:g.context * codec.hop + span]
    raw_onsets = A.onsets(raw, codec.sample_rate)
    reference = {"onsets_per_s_raw": len(raw_onsets) * codec.sample_rate
                 / span,
                 "onsets_per_s_codec": len(A.onsets(ref[:, :span],
                                                    codec.sample_rate))
                 * codec.sample_rate / span}
    for seed in seeds:
      row = {"clip": name, "caption": caption, "seed": seed,
             "reference": reference}
      for cond in ("controls", "none"):
        t0 = time.perf_counter()

        def controls_for(i):
          start = g.context + i * g.block
          fc = ({n: f[None, start - g.context:start + g.block]
                 for n, f in feats.items()} if cond == "controls" else None)
          return make_controls(spec, cross_tokens=tokens,
                               cfg_scale=cfg_scale, seed=seed,
                               frame_controls=fc)

        state = stream.prime(params, z[None, :g.context], controls_for(0))
        out = []
        for i in range(blocks):
          state, x = stream.block(params, state, controls_for(i))
          out.append(np.asarray(x[0]))
        gen = np.asarray(codec.decode(np.concatenate(out)))
        row[cond] = A.adherence(ref, gen, codec.sample_rate,
                                codec.frame_rate, frames=blocks * g.block,
                                pitch_method=pitch_method)
        gen_onsets = A.onsets(gen[:, :span], codec.sample_rate)
        row[cond]["onset_f1_raw"] = A.event_f1(raw_onsets, gen_onsets, 0.05)
        row[cond]["onsets_per_s"] = (len(gen_onsets) * codec.sample_rate
                                     / span)
        row[cond]["seconds"] = time.perf_counter() - t0
      log(f"[sketch-eval] {name} seed {seed}: "
          + ", ".join(f"{k} {row['controls'][k]:.2f} vs {row['none'][k]:.2f}"
                      for k in ("pitch_accuracy", "chroma_accuracy",
                                "cqt_topk_match", "onset_f1",
                                "loudness_correlation")))
      rows.append(row)
  keys = ("pitch_accuracy", "chroma_accuracy", "cqt_topk_match", "onset_f1",
          "loudness_correlation", "onset_f1_raw", "onsets_per_s")

  def means(sel):
    return {cond: {k: float(np.nanmean([r[cond][k] for r in sel]))
                   for k in keys} for cond in ("controls", "none")}

  summary = {}
  for group in sorted({r["clip"].split("/")[0] for r in rows}) + ["all"]:
    sel = [r for r in rows if group == "all" or r["clip"].startswith(group)]
    summary[group] = means(sel)
    summary[group]["clips"] = len({r["clip"] for r in sel})
    summary[group]["rows"] = len(sel)
  summary["all"]["seeds"] = {str(s): means([r for r in rows
                                            if r["seed"] == s])
                             for s in seeds}
  return {"model": os.path.abspath(model), "controls": names,
          "steps": steps, "cfg_scale": cfg_scale, "blocks": blocks,
          "context_frames": g.context, "block_frames": g.block,
          "pitch_method": pitch_method, "seeds": seeds,
          "device": jax.devices()[0].platform,
          "jax": jax.__version__, "summary": summary, "clips": rows}


def main():
  from lmdm_jax.cliutil import int_list
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--model", required=True, help="an exported package")
  ap.add_argument("--audio", action="append", required=True,
                  help="folder of held-out audio with .txt captions "
                       "(repeatable)")
  ap.add_argument("--clips", type=int, default=6, help="clips per folder")
  ap.add_argument("--blocks", type=int, default=8)
  ap.add_argument("--seeds", type=int_list, default=[0],
                  help="comma-separated seeds: one generation per clip each")
  ap.add_argument("--pitch-method", default="yin", choices=("yin", "pyin"))
  ap.add_argument("--json", required=True)
  a = ap.parse_args()
  r = run(a.model, a.audio, a.clips, a.blocks, seeds=a.seeds,
          pitch_method=a.pitch_method)
  with open(a.json, "w") as f:
    json.dump(r, f, indent=2)
  print(json.dumps(r["summary"], indent=2))


if __name__ == "__main__":
  main()
