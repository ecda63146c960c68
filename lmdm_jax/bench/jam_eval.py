"""Jamming of a jam model vs the partner's future visibility (JSON).

For each held-out piece with stems (`lmdm data demo --stems` layout: the
mix in AUDIO/<group>/<name>.flac, its parts in STEMS/<group>/<name>/): part
k (k = clip index mod parts) is the partner, the sum of the other parts the
real accompaniment. Two measurements:

1. Held-out loss (`partner_losses`): the flow-matching loss of the real
   accompaniment's blocks given its partner at each t_f, no partner, or
   another clip's partner, with the same noise. A model that uses its
   partner scores lower with it and higher with a wrong one. This is
   measured on latents, so the codec cannot hide it.
2. Generation: the model continues the accompaniment from its first s
   frames (its codec latents; --context none: from zeros) for --blocks
   blocks given the partner with visibility t_f (frames past each block's
   start; each --tf value) or no partner (the unconditioned baseline), same
   seeds. Coherence with the partner over the generated span
   (lmdm_jax/eval/adherence.py `coherence`: chord-tone agreement, chroma
   agreement, onset F1) and `latent_r` (per-frame correlation with the real
   accompaniment's latents), against references: the real accompaniment
   through the codec ("real": the most a model can reach through this codec)
   and raw ("real_raw"), and random pairings of the generation and of the
   raw accompaniment with another clip's partner (the paper's Fig. 6 floor).

  python benchmarks/jam_eval.py --model lmdm_jax/assets/sketch \\
      --audio JAM/audio/heldout/bach_chorales --stems JAM/stems/heldout/bach_chorales \\
      --clips 8 --blocks 8 --tf 24,0,-43 --json benchmarks/results/jam_eval.json
      [--loss-only] [--context none]
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


def partner_losses(pkg, params, data, tfs, codec, encoder, blocks: int,
                   context: str = "real", draws: int = 8, seed: int = 0):
  """Held-out flow-matching loss of the accompaniment's blocks given its
  partner at each t_f, no partner, or another clip's partner (at the largest
  t_f).

  Whether a model *uses* its partner, measured where the codec cannot hide
  it: the same windows (each block of each clip with its s context frames),
  the same noise levels t (a uniform grid of `draws` points, one noise draw
  each) and the same text for every condition; sketch controls absent;
  context kept whole (`context` "real") or zeroed ("none"). Returns
  {condition: mean loss} (per-clip means under "per_clip").
  """
  import jax.numpy as jnp
  from lmdm_jax.model import control_inputs as ci
  from lmdm_jax.train import finetune

  g = pkg.geometry
  spec = finetune.FinetuneSpec(pkg.dit, g, control_dropout=0.0,
                               median_p=0.0)
  names = [n for n, _ in pkg.dit.controls]
  n_w = blocks * draws
  t = jnp.tile((jnp.arange(draws) + 0.5) / draws, blocks)
  eps = jax.random.normal(jax.random.PRNGKey(seed),
                          (n_w, g.window, pkg.dit.io_channels))

  @jax.jit
  def loss(latents, partner, tokens, cutoff, given):
    d = dict(t=t, eps=eps,
             keep=jnp.full((n_w, g.context),
                           1.0 if context == "real" else 0.0),
             text=jnp.ones(n_w), input_add=jnp.ones(n_w),
             control_keep=jnp.tile(jnp.asarray(
                 [given if n == ci.PARTNER else 0.0 for n in names]),
                 (n_w, 1)),
             control_kernel=jnp.ones((n_w, len(names)), jnp.int32),
             partner_cutoff=jnp.full((n_w,), cutoff))
    batch = {"latents": latents, "control_partner": partner,
             "cross_tokens": jnp.broadcast_to(tokens, (n_w,) +
                                              tokens.shape[1:]),
             "global_cond": jnp.zeros((n_w, max(pkg.dit.global_cond_dim,
                                                1)))}
    return finetune.window_loss(params, spec, batch, d).mean()

  def windows(z):
    w = np.stack([z[i * g.block:i * g.block + g.window]
                  for i in range(blocks)])
    return np.repeat(w, draws, axis=0)

  conds = [f"tf{v:+d}" for v in tfs] + ["none", "random"]
  per_clip = {c: [] for c in conds}
  enc = [(np.asarray(codec.encode(a))[:g.context + blocks * g.block],
          ci.pack(np.asarray(codec.encode(p))[:g.context + blocks * g.block]),
          np.asarray(encoder.encode_one(cap or "music"))[None])
         for _, cap, p, a in data]
  need = g.context + blocks * g.block
  for (name, *_), (za, _, _) in zip(data, enc):
    if za.shape[0] < need:
      raise ValueError(f"{name}: {za.shape[0]} latent frames, the held-out "
                       f"loss of {blocks} blocks needs {need}")
  partners = [windows(packed) for _, packed, _ in enc]   # once per clip
  for i, (za, _, tokens) in enumerate(enc):
    lat, par = windows(za), partners[i]
    other = partners[(i + 1) % len(enc)]
    for v in tfs:
      per_clip[f"tf{v:+d}"].append(float(loss(lat, par, tokens,
                                              g.context + v, 1.0)))
    per_clip["none"].append(float(loss(lat, par, tokens, g.context, 0.0)))
    per_clip["random"].append(float(loss(lat, other, tokens,
                                         g.context + max(tfs), 1.0)))
  out = {c: float(np.mean(v)) for c, v in per_clip.items()}
  out["per_clip"] = per_clip
  out.update(context=context, draws=draws, t_grid="uniform midpoints")
  return out


def latent_r(z_gen, z_real) -> float:
  """Mean per-frame Pearson r of generated and real latents [frames, C]:
  how close the generation comes to the real accompaniment at the codec's
  own resolution."""
  a = z_gen - z_gen.mean(1, keepdims=True)
  b = z_real - z_real.mean(1, keepdims=True)
  r = (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) *
                                  np.linalg.norm(b, axis=1), 1e-12)
  return float(np.mean(r))


def run(model, audio_dirs, stems_dirs, n_clips, blocks, tfs, seed=0,
        log=print, context: str = "real", loss_draws: int = 8,
        generate: bool = True) -> dict:
  from lmdm_jax import pretrained
  from lmdm_jax.model import control_inputs as ci
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
  for name, caption, partner, acc in (data if generate else []):
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
      z_gen = np.concatenate(out)
      gen = np.asarray(codec.decode(z_gen))
      gen_audio[cond] = gen
      ref = partner[:, span][:, :gen.shape[1]]
      row[cond] = A.coherence(ref, gen, codec.sample_rate, codec.frame_rate,
                              frames=blocks * g.block)
      row[cond]["latent_r"] = latent_r(z_gen, za[g.context:total])
      row[cond]["seconds"] = time.perf_counter() - t0
    real = np.asarray(codec.decode(za[g.context:]))   # same codec path
    row["real"] = A.coherence(partner[:, span][:, :real.shape[1]], real,
                              codec.sample_rate, codec.frame_rate,
                              frames=blocks * g.block)
    row["real_raw"] = A.coherence(partner[:, span], acc[:, span],
                                  codec.sample_rate, codec.frame_rate,
                                  frames=blocks * g.block)
    gens.append(gen_audio["tf+0" if 0 in tfs else conds[0]])
    rows.append(row)
    log(f"[jam-eval] {name}: chord tone "
        + ", ".join(f"{c} {row[c]['chord_tone']:.2f}"
                    for c in conds + ["real", "real_raw"]))
  # Random pairing: generation (and raw accompaniment) of clip i against the
  # partner of clip i+1.
  for i, row in enumerate(rows):
    other = data[(i + 1) % len(data)][2][:, span]
    gen = gens[i]
    row["random"] = A.coherence(other[:, :gen.shape[1]], gen,
                                codec.sample_rate, codec.frame_rate,
                                frames=blocks * g.block)
    row["real_raw_random"] = A.coherence(other, data[i][3][:, span],
                                         codec.sample_rate,
                                         codec.frame_rate,
                                         frames=blocks * g.block)
  keys = ("chord_tone", "chroma_agreement", "onset_f1")
  refs = ["real", "real_raw", "random", "real_raw_random"]
  summary = {"clips": len(data)}
  if rows:
    summary.update({c: {k: float(np.nanmean([r[c][k] for r in rows]))
                        for k in keys} for c in conds + refs})
    for c in conds:
      summary[c]["latent_r"] = float(np.mean([r[c]["latent_r"]
                                              for r in rows]))
  if loss_draws:
    summary["loss"] = partner_losses(pkg, params, data, tfs, codec, encoder,
                                     blocks, context=context,
                                     draws=loss_draws, seed=seed)
    log("[jam-eval] held-out loss: " + ", ".join(
        f"{c} {v:.4f}" for c, v in summary["loss"].items()
        if isinstance(v, float)))
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
  ap.add_argument("--loss-draws", type=int, default=8,
                  help="noise levels per window for the held-out loss with "
                       "and without the partner (0: skip it)")
  ap.add_argument("--loss-only", action="store_true",
                  help="skip the generations (the held-out loss only)")
  ap.add_argument("--json", required=True)
  a = ap.parse_args()
  if len(a.audio) != len(a.stems):
    ap.error("give one --stems per --audio")
  tfs = [int(v) for v in a.tf.split(",") if v.strip()]
  r = run(a.model, a.audio, a.stems, a.clips, a.blocks, tfs,
          context=a.context, loss_draws=a.loss_draws,
          generate=not a.loss_only)
  with open(a.json, "w") as f:
    json.dump(r, f, indent=2)
  print(json.dumps(r["summary"], indent=2))


if __name__ == "__main__":
  main()
