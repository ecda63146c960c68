"""Directories of audio -> musicnn outputs -> FD, KL, drift, tag summaries.

  from lmdm_jax.eval import evaluate_dirs, tag_summary
  tag_summary("gen/piano/")["focus"]       # {'piano': 0.41, 'guitar': ...}
  evaluate_dirs("gen/", "heldout/", window_seconds=10.0)

Files: .wav/.flac/.ogg (and whatever else soundfile decodes, see
AUDIO_EXTENSIONS) at any rate and channel count, averaged to mono and
resampled to 16 kHz with librosa (soxr_hq), as musicnn's librosa.load.
A file that cannot be read, holds NaN/inf, or is shorter than one musicnn
patch (2.976 s) raises ValueError naming it: a silently skipped file
would change the metrics.
"""
from __future__ import annotations

import dataclasses
import os
from typing import List, Optional, Sequence, Union

import numpy as np

from lmdm_jax.eval import metrics
from lmdm_jax.eval import musicnn as mn

# Tags worth a look for prompt adherence (kept if the model has them).
FOCUS_TAGS = ("piano", "guitar", "strings", "violin", "cello", "harpsichord",
              "flute", "harp", "sitar", "drums", "synth", "choir", "vocal",
              "classical", "rock", "pop", "jazz", "techno", "electronic",
              "ambient", "instrumental", "acoustic")


@dataclasses.dataclass
class FileResult:
  """musicnn outputs of one file (P patches)."""
  path: str
  seconds: float               # duration of the file
  taggram: np.ndarray          # [P, 50]
  embeddings: np.ndarray       # [P, D] of the chosen layer
  starts: np.ndarray           # [P] patch start times, seconds


def list_audio(directory: str) -> List[str]:
  """Sorted audio files in `directory` and its sub-folders (a held-out set
  is laid out by group: DEMO/audio/heldout/<group>/*.flac). ValueError if
  it is not a directory or holds none."""
  from lmdm_jax.data.audio import AUDIO_EXTENSIONS
  if not os.path.isdir(directory):
    raise ValueError(f"not a directory: {directory}")
  files = sorted(os.path.join(root, f)
                 for root, _, names in os.walk(directory) for f in names
                 if f.lower().endswith(AUDIO_EXTENSIONS))
  if not files:
    raise ValueError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in "
                     f"{directory} or its sub-folders")
  return files


def load_16k(path: str):
  """-> (mono float32 at 16 kHz, duration in seconds); ValueError naming
  the file if unreadable, non-finite or too short for musicnn."""
  from lmdm_jax.data.audio import read
  try:
    x, sr = read(path)
  except ValueError as e:
    raise ValueError(f"{path}: {e}") from e
  y = mn.to_mono_16k(x, sr)
  if y.shape[0] < mn.MIN_SAMPLES:
    raise ValueError(
        f"{path}: too short for musicnn ({x.shape[1] / sr:.3f} s; needs at "
        f"least {mn.MIN_SAMPLES / mn.SAMPLE_RATE:.3f} s)")
  return y, x.shape[1] / sr


def analyse_files(files: Sequence[str], model: str = mn.DEFAULT_MODEL,
                  embedding: str = mn.DEFAULT_EMBEDDING,
                  hop_seconds: Optional[float] = None,
                  progress=None) -> List[FileResult]:
  """musicnn over every file (see module doc for the errors)."""
  if embedding not in mn.EMBEDDINGS:
    raise ValueError(f"unknown embedding layer {embedding!r}; choose from "
                     f"{list(mn.EMBEDDINGS)}")
  net = mn.get_musicnn(model)
  out = []
  for i, path in enumerate(files):
    audio, seconds = load_16k(path)
    r = net(audio, hop_seconds=hop_seconds)
    out.append(FileResult(path, seconds, r.taggram, r.embeddings(embedding),
                          r.starts))
    if progress:
      progress(f"[eval] {i + 1}/{len(files)} {path}: {len(r.starts)} patches")
  return out


def _as_files(files: Union[str, Sequence[str]]) -> List[str]:
  if isinstance(files, (str, os.PathLike)):
    return list_audio(str(files)) if os.path.isdir(files) else [str(files)]
  files = [str(f) for f in files]
  if not files:
    raise ValueError("no files given")
  return files


def summarise(results: Sequence[FileResult], tags: Sequence[str],
              top_k: int = 10) -> dict:
  """Tag summary of analysed files: mean over files of each file's mean
  tag probability (sigmoid, not normalised), top-k, focus tags."""
  per_file = np.stack([r.taggram.mean(axis=0) for r in results])
  mean = per_file.mean(axis=0)
  return {
      "files": len(results),
      "patches": int(sum(len(r.starts) for r in results)),
      "seconds": float(sum(r.seconds for r in results)),
      "top": [{"tag": t, "p": round(p, 4)}
              for t, p in mn.top_tags(mean, tags, top_k)],
      "focus": {t: round(float(mean[tags.index(t)]), 4)
                for t in FOCUS_TAGS if t in tags},
      "mean": {t: float(v) for t, v in zip(tags, mean)},
  }


def tag_summary(files: Union[str, Sequence[str]],
                model: str = mn.DEFAULT_MODEL, top_k: int = 10,
                hop_seconds: Optional[float] = None) -> dict:
  """Mean musicnn tag probabilities of files (a list, one file, or a
  directory): {'model', 'files', 'patches', 'seconds', 'top': [{'tag',
  'p'}] (k highest), 'focus': {'piano': p, 'strings': p, ...} (the
  FOCUS_TAGS the model has), 'mean': {tag: p} (all 50)}. A file's value is
  the mean over its 2.992 s patches; the summary averages files equally.
  """
  model = mn.canonical_model(model)
  results = analyse_files(_as_files(files), model, hop_seconds=hop_seconds)
  return dict(model=model, **summarise(results, mn.get_musicnn(model).tags,
                                       top_k))


def evaluate_dirs(generated: str, reference: Optional[str] = None,
                  model: str = mn.DEFAULT_MODEL,
                  embedding: str = mn.DEFAULT_EMBEDDING,
                  window_seconds: Optional[float] = None,
                  hop_seconds: Optional[float] = None, top_k: int = 10,
                  per_file: bool = False, progress=None) -> dict:
  """FD / KL of `generated` against `reference` (see metrics.py for the
  conventions), drift windows if window_seconds, tag summaries of both.
  Without `reference` only the generated tag summary is computed."""
  model = mn.canonical_model(model)
  if window_seconds is not None and reference is None:
    raise ValueError("--window-seconds (drift) needs --reference")
  if window_seconds is not None and not window_seconds > 0:
    raise ValueError(f"window_seconds must be > 0, got {window_seconds}")
  gen_files = list_audio(generated)
  ref_files = list_audio(reference) if reference is not None else []
  tags = mn.get_musicnn(model).tags
  gen = analyse_files(gen_files, model, embedding, hop_seconds, progress)
  hop = mn.PATCH_SECONDS if hop_seconds is None else hop_seconds
  out = {
      "model": model, "embedding": embedding,
      "embedding_dim": mn.EMBEDDINGS[embedding],
      "patch_seconds": mn.PATCH_SECONDS, "patch_hop_seconds": hop,
      "generated": dict(dir=generated, **summarise(gen, tags, top_k)),
  }
  if reference is not None:
    ref = analyse_files(ref_files, model, embedding, hop_seconds, progress)
    out["reference"] = dict(dir=reference, **summarise(ref, tags, top_k))
    gen_emb = np.concatenate([r.embeddings for r in gen])
    ref_emb = np.concatenate([r.embeddings for r in ref])
    for name, e in (("generated", gen_emb), ("reference", ref_emb)):
      if len(e) < 2:
        raise ValueError(f"{name}: FD needs at least 2 musicnn patches "
                         f"(2 files of 3 s or one of 6 s), got {len(e)}")
    out["fd"] = metrics.frechet_distance_embeddings(gen_emb, ref_emb)
    out["kl"] = metrics.set_kl([r.taggram for r in ref],
                               [r.taggram for r in gen])
    # Pairs: the same file name up to the extension (an id, as in
    # stable-audio-metrics), e.g. gen/x.wav with ref/x.flac.
    name = lambda r: os.path.splitext(os.path.basename(r.path))[0]  # noqa
    out["kl_paired"], out["pairs"] = metrics.paired_kl(
        {name(r): r.taggram for r in ref}, {name(r): r.taggram for r in gen})
    out["conventions"] = {
        "fd": f"Frechet distance of Gaussian fits of per-patch musicnn "
              f"'{embedding}' embeddings, all patches of each directory",
        "kl": "KL(reference || generated) of tag distributions: per file "
              "the mean sigmoid tag probabilities normalised to sum 1, per "
              "directory the mean over files; eps 1e-6 inside the log of "
              "the generated distribution; natural log",
        "kl_paired": "mean over files with the same name (extension "
                     "aside) in both directories of KL(reference_i || "
                     "generated_i)",
    }
    if window_seconds is not None:
      out["drift"] = {
          "window_seconds": window_seconds,
          "windows": metrics.drift(
              [{"embeddings": r.embeddings, "taggram": r.taggram,
                "starts": r.starts} for r in gen],
              ref_emb, [r.taggram for r in ref], window_seconds,
              mn.PATCH_SECONDS)}
  if per_file:
    out["files"] = {
        r.path: {"seconds": r.seconds, "patches": len(r.starts),
                 "top": [{"tag": t, "p": round(p, 4)} for t, p in
                         mn.top_tags(r.taggram.mean(0), tags, top_k)]}
        for r in gen + (ref if reference is not None else [])}
  return out


def format_report(result: dict, top_k: int = 5) -> str:
  """Human-readable lines for the terminal."""
  lines = [f"model {result['model']}, embedding {result['embedding']} "
           f"({result['embedding_dim']}-d)"]
  for key in ("generated", "reference"):
    if key not in result:
      continue
    s = result[key]
    top = ", ".join(f"{d['tag']} {d['p']:.3f}" for d in s["top"][:top_k])
    focus = ", ".join(f"{t} {p:.3f}" for t, p in s["focus"].items())
    lines += [f"{key}: {s['dir']} ({s['files']} files, {s['patches']} "
              f"patches, {s['seconds']:.1f} s)",
              f"  top {top_k}: {top}", f"  focus: {focus}"]
  if "fd" in result:
    lines.append(f"FD {result['fd']:.4f}   KL(ref||gen) {result['kl']:.4f}")
    if result.get("kl_paired") is not None:
      lines.append(f"paired KL {result['kl_paired']:.4f} over "
                   f"{result['pairs']} files")
  if "drift" in result:
    lines.append(f"drift ({result['drift']['window_seconds']} s windows):")
    for w in result["drift"]["windows"]:
      fd = "n/a" if w["fd"] is None else f"{w['fd']:.4f}"
      kl = "n/a" if w["kl"] is None else f"{w['kl']:.4f}"
      lines.append(f"  {w['start_s']:7.1f}-{w['end_s']:7.1f} s  "
                   f"patches {w['patches']:4d}  FD {fd}  KL {kl}")
  if "files" in result:
    lines.append("per file:")
    for path, f in result["files"].items():
      top = ", ".join(f"{d['tag']} {d['p']:.2f}" for d in f["top"][:top_k])
      lines.append(f"  {path}: {top}")
  return "\n".join(lines)
