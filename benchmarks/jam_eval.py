"""Jamming coherence of a jam model vs the partner's future visibility (JSON).

For each held-out piece with stems (`lmdm data demo --stems` layout: the
mix in AUDIO/<group>/<name>.flac, its parts in STEMS/<group>/<name>/): part
k (k = clip index mod parts) is the partner, the sum of the other parts the
real accompaniment. The model continues the accompaniment from its first s
frames (its codec latents; --context none: from zeros, so only the partner
and the text can set the harmony) for --blocks blocks, given the partner's latents
with visibility t_f (frames past each block's start; each --tf value) or no
partner at all (the unconditioned baseline), same seeds. Coherence with
the partner over the generated span (lmdm_jax/eval/adherence.py
`coherence`: chroma agreement, onset F1) is compared with two references:
the real accompaniment (what a perfect model would score) and random
pairing (the generation with t_f = 0 against another clip's partner; the
paper's Fig. 6 floor).

  python benchmarks/jam_eval.py --model lmdm_jax/assets/sketch \\
      --audio JAM/audio/heldout/bach_chorales --stems JAM/stems/heldout/bach_chorales \\
      --clips 8 --blocks 8 --tf 24,0,-43 --json benchmarks/results/jam_eval.json
"""
from __future__ import annotations

import argparse
import json
import os
import time

import jax
import numpy as np


def clips(audio_dirs, stems_dirs, n, seconds, codec):
  """Up to n (name, caption, partner [2, S], accompaniment [2, S]) per
  folder: the first `seconds` of each piece with >= 2 stems."""
  from lmdm_jax.data import audio as audio_lib
  out = []
  for adir, sdir in zip(audio_dirs, stems_dirs):
    k = 0
    for f in sorted(os.listdir(adir)):
      if not f.endswith((".flac", ".wav")) or k >= n:
        continue
      d = os.path.join(sdir, os.path.splitext(f)[0])
      if not os.path.isdir(d):
        continue
      parts = []
      for p in sorted(os.listdir(d)):
        x, sr = audio_lib.read(os.path.join(d, p))
        parts.append(audio_lib.convert(x, sr, codec.channels,
                                       codec.sample_rate))
      if len(parts) < 2:
        continue
      need = int(seconds * codec.sample_rate)
      parts = [np.pad(p, [(0, 0), (0, max(0, need - p.shape[1]))])[:, :need]
               for p in parts]
      j = k % len(parts)
      partner = parts[j]
      acc = np.sum(parts, axis=0) - partner
      if np.abs(partner).max() < 1e-3 or np.abs(acc).max() < 1e-3:
        continue
      cap_path = os.path.join(adir, os.path.splitext(f)[0] + ".txt")
      cap = open(cap_path).read().strip() if os.path.exists(cap_path) else ""
      out.append((f"{os.path.basename(adir)}/{f}#part{j:02d}", cap, partner,
                  acc))
      k += 1
  return out


def run(model, audio_dirs, stems_dirs, n_clips, blocks, tfs, seed=0,
        log=print, context: str = "real") -> dict:
  from lmdm_jax import pretrained
  from lmdm_jax.control import inputs as ci
  from lmdm_jax.eval import adherence as A
  from lmdm_jax.streaming.sampler import Stream
  from lmdm_jax.streaming.state import StreamSpec, make_controls

  pkg = pretrained.load(model)
  if ci.PARTNER not in pkg.dit.control_dims:
    raise ValueError(f"{model} has no partner control")
  codec = pkg.make_codec()
  g, d = pkg.geometry, pkg.defaults
  steps, cfg_scale = int(d.get("steps", 8)), float(d.get("cfg_scale", 1.0))
  params = jax.tree.map(np.asarray, pkg.params["dit"])
  encoder = pkg.text_encoder()
  total = g.context + blocks * g.block
  seconds = total * codec.hop / codec.sample_rate + 0.5
  span = slice(g.context * codec.hop, total * codec.hop)
  conds = [f"tf{t:+d}" for t in tfs] + ["none"]
  streams = {}
  for t in tfs:
    spec = StreamSpec(pkg.dit, g, batch=1, cond_tokens=pkg.cond_tokens,
                      steps=steps, sampler=d.get("sampler", "pingpong"),
                      cfg=cfg_scale != 1.0, partner_visibility=int(t))
    streams[f"tf{t:+d}"] = (spec, Stream(spec))
  streams["none"] = streams[f"tf{tfs[0]:+d}"]
  rows, gens = [], []
  data = clips(audio_dirs, stems_dirs, n_clips, seconds, codec)
  if len(data) < 2:
    raise ValueError(f"need >= 2 clips with stems, found {len(data)}")
  for name, caption, partner, acc in data:
    zp = np.asarray(codec.encode(partner))[:total]
    za = np.asarray(codec.encode(acc))[:total]
    packed = ci.pack(zp)
    tokens = np.asarray(encoder.encode_one(caption or "music"))[None]
    row = {"clip": name, "caption": caption}
    gen_audio = {}
    for cond in conds:
      spec, stream = streams[cond]
      t0 = time.perf_counter()

      def controls_for(i):
        start = g.context + i * g.block
        fc = (None if cond == "none" else
              {ci.PARTNER: packed[None, start - g.context:start + g.block]})
        return make_controls(spec, cross_tokens=tokens, cfg_scale=cfg_scale,
                             seed=seed, frame_controls=fc)

      ctx = (za[None, :g.context] if context == "real" else
             np.zeros((1, g.context, za.shape[1]), np.float32))
      state = stream.prime(params, ctx, controls_for(0))
      out = []
      for i in range(blocks):
        state, x = stream.block(params, state, controls_for(i))
        out.append(np.asarray(x[0]))
      gen = np.asarray(codec.decode(np.concatenate(out)))
      gen_audio[cond] = gen
      ref = partner[:, span][:, :gen.shape[1]]
      row[cond] = A.coherence(ref, gen, codec.sample_rate, codec.frame_rate,
                              frames=blocks * g.block)
      row[cond]["seconds"] = time.perf_counter() - t0
    real = np.asarray(codec.decode(za[g.context:]))   # same codec path
    row["real"] = A.coherence(partner[:, span][:, :real.shape[1]], real,
                              codec.sample_rate, codec.frame_rate,
                              frames=blocks * g.block)
    gens.append(gen_audio["tf+0" if 0 in tfs else conds[0]])
    rows.append(row)
    log(f"[jam-eval] {name}: chroma "
        + ", ".join(f"{c} {row[c]['chroma_agreement']:.2f}"
                    for c in conds + ["real"]))
  # Random pairing: generation of clip i against the partner of clip i+1.
  for i, row in enumerate(rows):
    other = data[(i + 1) % len(data)][2][:, span]
    gen = gens[i]
    row["random"] = A.coherence(other[:, :gen.shape[1]], gen,
                                codec.sample_rate, codec.frame_rate,
                                frames=blocks * g.block)
  keys = ("chroma_agreement", "onset_f1")
  summary = {c: {k: float(np.nanmean([r[c][k] for r in rows])) for k in keys}
             for c in conds + ["real", "random"]}
  summary["clips"] = len(rows)
  return {"model": os.path.abspath(model), "steps": steps,
          "context": context,
          "cfg_scale": cfg_scale, "blocks": blocks, "t_f_frames": list(tfs),
          "t_f_seconds": [t / codec.frame_rate for t in tfs],
          "frame_rate": codec.frame_rate, "context_frames": g.context,
          "block_frames": g.block, "device": jax.devices()[0].platform,
          "jax": jax.__version__, "summary": summary, "clips": rows}


def main():
  ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  ap.add_argument("--model", required=True, help="an exported jam package")
  ap.add_argument("--audio", action="append", required=True,
                  help="folder of held-out mixes (repeatable)")
  ap.add_argument("--stems", action="append", required=True,
                  help="their stems folder (one per --audio)")
  ap.add_argument("--clips", type=int, default=8, help="clips per folder")
  ap.add_argument("--blocks", type=int, default=8)
  ap.add_argument("--tf", default="24,0,-43",
                  help="visibilities in frames past the block start")
  ap.add_argument("--context", default="real", choices=("real", "none"),
                  help="prime with the real accompaniment's first s frames, "
                       "or with zeros (the partner and text alone)")
  ap.add_argument("--json", required=True)
  a = ap.parse_args()
  if len(a.audio) != len(a.stems):
    ap.error("give one --stems per --audio")
  tfs = [int(v) for v in a.tf.split(",") if v.strip()]
  r = run(a.model, a.audio, a.stems, a.clips, a.blocks, tfs,
          context=a.context)
  with open(a.json, "w") as f:
    json.dump(r, f, indent=2)
  print(json.dumps(r["summary"], indent=2))


if __name__ == "__main__":
  main()
