"""Where the `semitone` codec's onsets go (issue 19: onset F1 >= 0.8 of raw).

Round trips held-out clips once through the encoder and decodes them with
variants of the decoder's attack (`attack_db`: the rise that triggers a
sharp attack; `attack`: its length in samples; 0 = linear envelopes), then
scores librosa onsets of each decode against the raw clip's
(`eval.adherence.event_f1`, 50 ms): F1 per clip (mean), pooled recall and
precision, and for the shipped decoder the signed offset of the nearest
decoded onset to each raw one (within 100 ms).

  PYTHONPATH=. python3 benchmarks/semitone_onsets.py \
      --heldout DEMO/audio/heldout --clips 32 \
      --json benchmarks/results/semitone_onsets.json

With --envelopes, three rows more: the shipped decode times an onset
envelope (a fade of `fade` samples down to `dip` before each onset, then a
64-sample attack; at most one onset per latent frame, placed on a
128-sample grid) at onsets the latents do not carry, to size an onset
channel: the raw clip's own librosa onsets (the metric's detector: an
oracle) and those of an encoder-side log-mel spectral-flux detector
(`flux_onsets`: librosa's peak-picking windows, an absolute threshold, no
per-clip normalisation, so it could run block by block).

The clips are `lmdm bench codec --compare`'s (`bench.codec.crops`: 8 s,
crop 0 of every file first).
"""
from __future__ import annotations

import argparse
import json
import platform

import numpy as np

VARIANTS = {"shipped (attack 64, 1 dB)": {},
            "attack_db 2": {"attack_db": 2.0},
            "attack_db 3": {"attack_db": 3.0},
            "attack_db 6": {"attack_db": 6.0},
            "attack 32": {"attack": 32},
            "attack 256": {"attack": 256},
            "linear (attack 0)": {"attack": 0}}


def fade_envelope(n: int, times_s, sr: int, fade: int, dip: float,
                  attack: int = 64, quantum: int = 128) -> np.ndarray:
  """[n] gain: 1, except a linear fade from 1 to `dip` over the `fade`
  samples before each onset and a rise back to 1 over `attack` samples."""
  g = np.ones(n)
  for t in times_s:
    p = int(round(t * sr / quantum)) * quantum
    if p >= n:
      continue
    a = max(0, p - fade)
    g[a:p] = np.minimum(g[a:p], np.linspace(1.0, dip, p - a,
                                            endpoint=False))
    e = min(n, p + attack)
    g[p:e] = np.minimum(g[p:e], np.linspace(dip, 1.0, e - p,
                                            endpoint=False))
  return g


def one_per_frame(times_s, strength, sr: int, hop: int):
  """The strongest onset of each latent frame (sorted times)."""
  best = {}
  for t, s in zip(times_s, strength):
    j = int(t * sr) // hop
    if j not in best or s > best[j][1]:
      best[j] = (t, s)
  return np.array(sorted(t for t, _ in best.values()))


def flux_onsets(audio, sr: int, delta: float = 0.1, hop: int = 256,
                n_fft: int = 2048):
  """Log-mel spectral-flux onsets of the mid: -> (times s, strengths).

  Flux = mean over 128 mel bands of the positive dB rise between frames
  (floor -80 dB); a frame is an onset where its flux is the largest within
  5 frames before, at least the mean within 17 before / 17 after plus
  `delta` dB, and 5 frames after the previous onset (librosa's
  onset_detect windows at hop 256, without its per-clip normalisation).
  """
  from lmdm_jax.codecs.mel import mel_filters, stft
  mid = 0.5 * (audio[0] + audio[1]).astype(np.float64)
  frames = len(mid) // hop + 1
  power = np.abs(stft(mid, np.hanning(n_fft + 1)[:-1], hop, frames)) ** 2
  db = 10 * np.log10(np.maximum(power @ mel_filters(sr, n_fft, 128, 0.0,
                                                    sr / 2).T, 1e-10))
  db = np.maximum(db, -80.0)
  f = np.zeros(frames)
  f[1:] = np.maximum(0.0, np.diff(db, axis=0)).mean(-1)
  out, last = [], -10 ** 9
  for i in range(frames):
    if f[i] < f[max(0, i - 5):i + 1].max():
      continue
    if f[i] < f[max(0, i - 17):i + 18].mean() + delta or i - last <= 5:
      continue
    out.append(i)
    last = i
  idx = np.asarray(out, int)
  return idx * hop / sr, f[idx]


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--heldout", required=True)
  p.add_argument("--clips", type=int, default=32)
  p.add_argument("--seconds", type=float, default=8.0)
  p.add_argument("--envelopes", action="store_true",
                 help="also the onset-envelope rows (see above)")
  p.add_argument("--json", required=True)
  args = p.parse_args(argv)
  from lmdm_jax.bench import codec as B
  from lmdm_jax.codecs import get_codec
  from lmdm_jax.eval import adherence as A
  sr = 44100
  clips = B.crops(B.list_audio_files(args.heldout), args.clips,
                  args.seconds, sr)
  if not clips:
    raise SystemExit(f"no clips under {args.heldout}")
  encoder = get_codec("semitone")
  latents = [encoder.encode(a) for _, a in clips]
  ref = [A.onsets(a, sr) for _, a in clips]
  out = {"heldout": args.heldout, "clips": len(clips),
         "seconds": args.seconds, "tolerance_s": 0.05, "variants": {},
         "machine": platform.machine()}
  offsets = []
  for name, kwargs in VARIANTS.items():
    codec = get_codec("semitone", **kwargs)
    f1, hits, n_ref, n_gen = [], 0, 0, 0
    for z, r in zip(latents, ref):
      g = A.onsets(codec.decode(z), sr)
      f1.append(A.event_f1(r, g, 0.05))
      hits += A.match_events(r, g, 0.05)
      n_ref, n_gen = n_ref + len(r), n_gen + len(g)
      if not kwargs and len(g):
        d = g[None] - np.asarray(r)[:, None]
        near = d[np.arange(len(r)), np.argmin(np.abs(d), 1)]
        offsets += list(near[np.abs(near) < 0.1])
    out["variants"][name] = {
        "kwargs": kwargs, "onset_f1": float(np.mean(f1)),
        "recall": hits / max(n_ref, 1), "precision": hits / max(n_gen, 1),
        "raw_onsets": n_ref, "decoded_onsets": n_gen}
    print(f"{name:28s} F1 {np.mean(f1):.3f} recall {hits / max(n_ref, 1):.3f}"
          f" precision {hits / max(n_gen, 1):.3f}", flush=True)
  if args.envelopes:
    shipped = get_codec("semitone")
    rows = {"envelope at raw onsets (oracle), fade 2048 to 0.2":
            ("raw", 2048, 0.2),
            "envelope at raw onsets (oracle), fade 1024 to 0.3":
            ("raw", 1024, 0.3),
            "envelope at flux-detector onsets, fade 2048 to 0.2":
            ("flux", 2048, 0.2)}
    decoded = [shipped.decode(z) for z in latents]
    flux = [flux_onsets(a, sr) for _, a in clips]
    for name, (src, fade, dip) in rows.items():
      f1, hits, n_ref, n_gen = [], 0, 0, 0
      for (_, a), y, r, fl in zip(clips, decoded, ref, flux):
        times, strength = (r, -np.arange(len(r))) if src == "raw" else fl
        on = one_per_frame(times, strength, sr, shipped.hop)
        g = A.onsets(y * fade_envelope(y.shape[1], on, sr, fade, dip), sr)
        f1.append(A.event_f1(r, g, 0.05))
        hits += A.match_events(r, g, 0.05)
        n_ref, n_gen = n_ref + len(r), n_gen + len(g)
      out["variants"][name] = {
          "onsets": src, "fade": fade, "dip": dip,
          "onset_f1": float(np.mean(f1)), "recall": hits / max(n_ref, 1),
          "precision": hits / max(n_gen, 1), "raw_onsets": n_ref,
          "decoded_onsets": n_gen}
      print(f"{name:28s} F1 {np.mean(f1):.3f}", flush=True)
  o = 1000 * np.asarray(offsets)
  out["shipped_offsets_ms"] = {
      "n": int(o.size), "median": float(np.median(o)),
      "p25": float(np.percentile(o, 25)), "p75": float(np.percentile(o, 75)),
      "within_50ms": float(np.mean(np.abs(o) <= 50))}
  print("shipped decoder, nearest decoded onset - raw onset (ms):",
        out["shipped_offsets_ms"])
  with open(args.json, "w") as f:
    json.dump(out, f, indent=1)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
