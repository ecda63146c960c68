"""Runs the ORIGINAL musicnn (TF graph + its own preprocessing) on fixed
synthetic signals and saves inputs and outputs as the JAX port's test
fixture, tests/data/musicnn_reference.npz.

Run in the scratch TF environment described in tools/convert_musicnn.py:

  TF_USE_LEGACY_KERAS=1 /tmp/tfenv/bin/python tools/musicnn_reference.py \
      --out tests/data/musicnn_reference.npz

Every signal is written as a 16 kHz 16-bit wav and given to musicnn's own
functions, unchanged: `musicnn.extractor.batch_data` (librosa.load at 16
kHz, mel spectrogram, float16 log compression, 3 s patches) for the network
input and `musicnn.extractor.extractor(..., extract_features=True)` for the
outputs, once per model (every patch in one batch, see below). The fixture
stores the audio as int16 (what the wav holds, so the test feeds exactly
the same samples), and per signal and model:
  <sig>/audio            int16 [samples]      (float = int16 / 32768)
  <sig>/mel              float16 [frames, 96] musicnn's log-mel (audio_rep)
  <sig>/batch            float16 [patches, 187, 96] the network input
  <sig>/<model>/taggram  float32 [patches, 50] sigmoid tag probabilities
  <sig>/<model>/penultimate, mean_pool, max_pool  float32 [patches, D]
plus `models`, `signals`, and the package versions used.

The signals stay below the level at which musicnn's float16 log compression
overflows (10000 * mel power > 65504, i.e. a pure tone above about 0.11 of
full scale): the original then feeds `inf` to the network (see
docs/evaluation.md). `loud_sine` is there to record that behaviour.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile

import numpy as np

SR = 16000
PATCH = 187
MODELS = ("MSD_musicnn", "MTT_musicnn")


def signals() -> dict:
  """Deterministic test signals (float64 in [-1, 1]) at 16 kHz."""
  def t(sec):
    return np.arange(int(sec * SR)) / SR
  rng = np.random.RandomState(1234)
  out = {}
  x = t(3.0)
  out["sine"] = 0.08 * np.sin(2 * np.pi * 440 * x) + 0.03 * np.sin(
      2 * np.pi * 880 * x)
  out["noise"] = 0.05 * rng.randn(int(3.0 * SR)).clip(-4, 4)
  x = t(6.0)    # two 3 s patches
  f0, f1 = 80.0, 5000.0
  phase = 2 * np.pi * (f0 * x + (f1 - f0) / (2 * 6.0) * x ** 2)
  out["chirp"] = 0.1 * np.sin(phase)
  # a plucked chord progression: decaying harmonic tones, 8 per second
  x = t(3.2)
  y = np.zeros_like(x)
  notes = [220.0, 277.18, 329.63, 440.0, 246.94, 311.13, 369.99, 493.88]
  for i in range(int(3.2 * 8)):
    s = i / 8
    on = x >= s
    tt = np.where(on, x - s, 0)
    f = notes[i % len(notes)]
    for h in range(1, 6):
      y += on * 0.02 / h * np.exp(-4 * tt) * np.sin(2 * np.pi * h * f * tt)
  out["plucks"] = y
  out["loud_sine"] = 0.5 * np.sin(2 * np.pi * 440 * t(3.0))
  return out


def to_int16(x):
  return np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--out", default="tests/data/musicnn_reference.npz")
  p.add_argument("--audio", nargs="*", default=None,
                 help="instead of the synthetic fixture: real files; writes "
                 "the original's outputs on an excerpt of each to --out "
                 "(compare with tools/musicnn_compare.py)")
  p.add_argument("--excerpt", default="30:60",
                 help="with --audio: START:END seconds (default 30:60)")
  args = p.parse_args(argv)
  if args.audio:
    return _real_audio(args)
  import importlib.metadata as md
  import librosa
  import soundfile as sf
  from musicnn import configuration as mcfg
  from musicnn import extractor as mx
  # One sess.run per file: with musicnn's default BATCH_SIZE = 1, extractor()
  # returns the FIRST patch's 'penultimate' (and cnn1-3) again for every
  # later patch (its loop concatenates a stale variable); taggram and the
  # pools are unaffected. A batch holding all patches avoids that bug.
  mcfg.BATCH_SIZE = 1024
  n_frames = librosa.time_to_frames(3, sr=SR, n_fft=512, hop_length=256) + 1
  fix = {"models": np.array(MODELS), "signals": np.array(list(signals())),
         "versions": np.array([f"musicnn {md.version('musicnn')}",
                               f"tensorflow {md.version('tensorflow')}",
                               f"librosa {librosa.__version__}",
                               f"numpy {np.__version__}"])}
  with tempfile.TemporaryDirectory() as tmp:
    for name, x in signals().items():
      pcm = to_int16(x)
      path = os.path.join(tmp, name + ".wav")
      sf.write(path, pcm, SR, subtype="PCM_16")
      batch, rep = mx.batch_data(path, n_frames, n_frames)
      fix[f"{name}/audio"] = pcm
      fix[f"{name}/mel"] = rep.astype(np.float16)
      fix[f"{name}/batch"] = batch.astype(np.float16)
      for model in MODELS:
        taggram, _, feats = mx.extractor(path, model=model,
                                         extract_features=True)
        fix[f"{name}/{model}/taggram"] = np.asarray(taggram, np.float32)
        for k in ("penultimate", "mean_pool", "max_pool"):
          fix[f"{name}/{model}/{k}"] = np.asarray(feats[k], np.float32)
        print(f"{name} {model}: batch {batch.shape}, "
              f"inf in input {int(np.isinf(batch).sum())}, taggram "
              f"finite {bool(np.isfinite(taggram).all())}, top tags "
              f"{_top(taggram, model)}")
  os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
  np.savez_compressed(args.out, **fix)
  print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e3:.0f} kB)")
  return 0


def _real_audio(args) -> int:
  """The original musicnn on excerpts of real files (every patch in one
  batch). Writes each excerpt as a float wav next to --out and saves
  <name>/excerpt (its path), <name>/<model>/{taggram,penultimate} and
  <name>/infs (inf values in the original's log-mel input)."""
  import soundfile as sf
  from musicnn import configuration as mcfg
  from musicnn import extractor as mx
  mcfg.BATCH_SIZE = 1024
  a, b = (float(v) for v in args.excerpt.split(":"))
  out_dir = os.path.dirname(os.path.abspath(args.out))
  os.makedirs(out_dir, exist_ok=True)
  res = {}
  for path in args.audio:
    x, sr = sf.read(path, dtype="float32", always_2d=True)
    name = os.path.splitext(os.path.basename(path))[0]
    wav = os.path.join(out_dir, name + ".excerpt.wav")
    sf.write(wav, x[int(a * sr):int(b * sr)], sr, subtype="FLOAT")
    res[f"{name}/excerpt"] = np.array(wav)
    for model in MODELS:
      taggram, _, feats = mx.extractor(wav, model=model,
                                       extract_features=True)
      res[f"{name}/{model}/taggram"] = np.asarray(taggram, np.float32)
      res[f"{name}/{model}/penultimate"] = np.asarray(feats["penultimate"],
                                                      np.float32)
    rep = mx.batch_data(wav, PATCH, PATCH)[1]          # musicnn's log-mel
    res[f"{name}/infs"] = np.array(int(np.isinf(rep).sum()))
    print(f"{name}: {len(res[f'{name}/MTT_musicnn/taggram'])} patches, "
          f"{int(res[f'{name}/infs'])} inf in the log-mel input")
  np.savez(args.out, **res)
  print(f"wrote {args.out}")
  return 0


def _top(taggram, model, k=3):
  from musicnn import configuration as mcfg
  tags = mcfg.MSD_LABELS if model.startswith("MSD") else mcfg.MTT_LABELS
  m = np.asarray(taggram).mean(0)
  return [(tags[i], round(float(m[i]), 3)) for i in np.argsort(-m)[:k]]


if __name__ == "__main__":
  sys.exit(main())
