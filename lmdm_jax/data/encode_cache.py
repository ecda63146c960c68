"""One audio file's entry in a `lmdm data build` cache (<out>/<name>_encoded/).

`encode_file` reads a file (and, with --stems, its rendered parts),
encodes it with the build's codec, computes its sketch controls, and
writes the results atomically into the cache under a key of the file's
identity (absolute path, size, mtime) and the codec's name, arguments and
`encode_version` (bumped by a code change that moves its latents), so a
re-run reuses them and `--workers N` (`encoded`: spawned processes,
one codec each, results in file order) builds the same dataset as one
process. Records name their files relative to the cache (`_in_cache`
resolves them), so a moved <out> still reuses its encodings. The dataset
itself is written by lmdm_jax/data/builders.py.
"""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from lmdm_jax.data import audio as audio_lib
from lmdm_jax.data.sources import file_identity, find_stems


def make_codec(codec: str, kwargs: dict):
  """The codec by name; `oobleck` with directory = a model package takes
  the package's VAE (`lmdm fetch` / `lmdm package` output), any other
  directory is a `lmdm convert oobleck` one."""
  from lmdm_jax.codecs import get_codec
  d = kwargs.get("directory")
  if codec == "oobleck" and d and os.path.isfile(os.path.join(d,
                                                              "model.json")):
    from lmdm_jax import package
    pkg = package.load(d, dit_params=False)
    if pkg.codec.get("name") != "oobleck":
      raise package.PackageError(d, "codec", f"{pkg.codec.get('name')!r}, "
                                 f"not an oobleck VAE")
    cod = pkg.make_codec()
    rest = {k: v for k, v in kwargs.items() if k != "directory"}
    return get_codec("oobleck", config=cod.config, params=cod.params,
                     sample_rate=cod.sample_rate, **rest) if rest else cod
  return get_codec(codec, **kwargs)


def _part_records(path: str, rel: str, stem_paths, cod, cache: str,
                  min_frames: int, codec_key: str):
  """(records, skipped) of one mix's parts: per part k the accompaniment
  (sum of the other parts) as latents and part k as the partner."""
  try:
    ids = [file_identity(p) for p in stem_paths]
  except audio_lib.BadAudio as e:
    return [], [{"file": rel, "reason": f"stem {e}"}]
  key = hashlib.sha1(json.dumps([codec_key] + ids).encode()).hexdigest()
  meta_path = os.path.join(cache, key + ".parts.json")
  if os.path.exists(meta_path):
    with open(meta_path) as f:
      done = json.load(f)
    return [_in_cache(r, cache, ("latents_path", "partner_path"))
            for r in done["records"]], done["skipped"]
  records, skipped = [], []
  if len(stem_paths) < 2:
    skipped.append({"file": rel, "reason": f"{len(stem_paths)} stem(s): "
                    "accompaniment needs >= 2 parts"})
  else:
    xs = []
    for p in stem_paths:
      try:
        x, sr = audio_lib.read(p)
      except audio_lib.BadAudio as e:
        skipped.append({"file": rel, "reason": f"stem {os.path.basename(p)}"
                        f" {e}"})
        return records, skipped           # not cached: fixable by re-render
      xs.append(audio_lib.convert(x, sr, cod.channels, cod.sample_rate))
    n = max(x.shape[-1] for x in xs)
    xs = [np.pad(x, [(0, 0), (0, n - x.shape[-1])]) for x in xs]
    total = np.sum(xs, axis=0)
    for k, part in enumerate(xs):
      src = f"{rel}#part{k:02d}"
      acc = total - part
      if np.abs(part).max() < audio_lib.SILENCE_PEAK:
        skipped.append({"file": src, "reason": "silent part"})
        continue
      if np.abs(acc).max() < audio_lib.SILENCE_PEAK:
        skipped.append({"file": src, "reason": "silent accompaniment"})
        continue
      z, zp = cod.encode(acc), cod.encode(part)
      if z.shape[0] < min_frames:
        skipped.append({"file": src, "reason": f"too short: {z.shape[0]} "
                        f"latent frames < {min_frames}"})
        continue
      if not (np.isfinite(z).all() and np.isfinite(zp).all()):
        skipped.append({"file": src, "reason": "codec produced non-finite "
                        "latents"})
        continue
      lat = os.path.join(cache, f"{key}.part{k:02d}.acc.npy")
      par = os.path.join(cache, f"{key}.part{k:02d}.partner.npy")
      np.save(lat, z.astype(np.float32))
      np.save(par, zp.astype(np.float32))
      records.append({"source": src, "latents_path": lat,
                      "partner_path": par, "sample_rate": int(sr),
                      "duration": float(n / cod.sample_rate),
                      "frames": int(z.shape[0])})
  stored = [dict(r, latents_path=os.path.basename(r["latents_path"]),
                 partner_path=os.path.basename(r["partner_path"]))
            for r in records]
  with open(meta_path + ".tmp", "w") as f:
    json.dump({"records": stored, "skipped": skipped}, f)
  os.replace(meta_path + ".tmp", meta_path)
  return records, skipped


def encode_file(rel: str, cod, audio_dir: str, cache: str, codec: str,
                 codec_kwargs: dict, min_frames: int, controls,
                 pitch_method: str, stems: bool, stems_dir) -> dict:
  """One file's encodings, controls and part records, from the cache or
  computed into it: {"meta": its mix record or None (skipped), "parts":
  its part records (all of them; --parts-per-file picks later),
  "skipped": [{file, reason}], "reused": 0/1}. The same in a worker
  process as in the build's own (the cache files are written atomically,
  one file's by one process)."""
  out = {"meta": None, "parts": [], "skipped": [], "reused": 0}
  path = os.path.join(audio_dir, rel)
  try:
    key = _cache_key(path, codec, codec_kwargs, cod.encode_version)
  except audio_lib.BadAudio as e:       # not cached: a link may be fixed
    out["skipped"].append({"file": rel, "reason": str(e)})
    return out
  meta_path = os.path.join(cache, key + ".json")
  if os.path.exists(meta_path):
    with open(meta_path) as f:
      meta = _in_cache(json.load(f), cache, ("latents_path",))
    out["reused"] = 1
  else:
    meta = {"source": rel}
    try:
      x, sr, duration = audio_lib.load_for_codec(path, cod)
      z = cod.encode(x)
      if z.shape[0] < min_frames:
        raise audio_lib.BadAudio(
            f"too short: {z.shape[0]} latent frames < {min_frames}")
      if not np.isfinite(z).all():
        raise audio_lib.BadAudio("codec produced non-finite latents")
      np.save(os.path.join(cache, key + ".npy"), z.astype(np.float32))
      meta.update(sample_rate=sr, duration=duration,
                  latents_path=key + ".npy")   # relative to the cache
    except audio_lib.BadAudio as e:
      meta["skipped"] = str(e)
    with open(meta_path + ".tmp", "w") as f:
      json.dump(meta, f)
    os.replace(meta_path + ".tmp", meta_path)   # atomic: safe to resume
    meta = _in_cache(meta, cache, ("latents_path",))
  if "skipped" in meta:
    out["skipped"].append({"file": rel, "reason": meta["skipped"]})
    return out
  if controls:
    meta["controls_path"] = _controls_file(cache, key, controls,
                                           pitch_method, cod.frame_centre)
    if not os.path.exists(meta["controls_path"]):
      x, _, _ = audio_lib.load_for_codec(path, cod)
      frames = np.load(meta["latents_path"], mmap_mode="r").shape[0]
      _write_controls(meta["controls_path"], controls, x, cod, frames,
                      pitch_method)
  meta["frames"] = int(np.load(meta["latents_path"], mmap_mode="r").shape[0])
  out["meta"] = meta
  if stems:
    stem_paths = find_stems(path, rel, stems_dir)
    if stem_paths:
      out["parts"], skip = _part_records(
          path, rel, stem_paths, cod, cache, min_frames,
          json.dumps(_codec_identity(codec, codec_kwargs,
                                     cod.encode_version)))
      out["skipped"].extend(skip)
  return out


_WORKER = {}


def _worker_init(codec: str, codec_kwargs: dict, job: dict) -> None:
  _WORKER.update(cod=make_codec(codec, codec_kwargs), job=job)


def _worker_encode(rel: str) -> dict:
  return encode_file(rel, _WORKER["cod"], **_WORKER["job"])


def encoded(files, job: dict, cod, workers: int):
  """`encode_file` of every file, in `files`' order (so the dataset is
  the same whatever `workers` is): in this process, or in `workers`
  spawned processes each with its own codec."""
  if workers <= 1 or len(files) < 2:
    for rel in files:
      yield encode_file(rel, cod, **job)
    return
  import multiprocessing as mp
  with mp.get_context("spawn").Pool(
      min(workers, len(files)), initializer=_worker_init,
      initargs=(job["codec"], job["codec_kwargs"], job)) as pool:
    yield from pool.imap(_worker_encode, files)


def _in_cache(record: dict, cache: str, keys) -> dict:
  """`record` with its file fields resolved inside `cache` (absolute).
  Records store bare names; older caches stored cwd-relative paths, whose
  base names are the same files."""
  return dict(record, **{k: os.path.join(cache, os.path.basename(record[k]))
                         for k in keys if record.get(k)})


def _controls_file(cache: str, key: str, names,
                   pitch_method: str = "pyin", frame_centre: float = 0.0
                   ) -> str:
  # The pitch method and the codec's frame centre are part of the name
  # (pyin's files at centre 0 keep their old name).
  tag = f".centre{frame_centre:g}" if frame_centre else ""
  if pitch_method != "pyin" and "pitch" in names:
    tag += f".{pitch_method}"
  return os.path.join(cache, f"{key}.controls-{'-'.join(names)}{tag}.npz")


def _write_controls(path: str, names, audio, codec, frames: int,
                    pitch_method: str = "pyin") -> None:
  from lmdm_jax.data import controls as extract
  feats = extract.extract(names, audio, codec.sample_rate, codec.frame_rate,
                          frames, pitch_method=pitch_method,
                          frame_centre=codec.frame_centre)
  np.savez(path + ".tmp.npz", **feats)
  os.replace(path + ".tmp.npz", path)


def _codec_identity(codec_name: str, codec_kwargs: dict,
                    encode_version: int = 0) -> list:
  """What an encoding depends on besides the audio. A codec's first
  encode_version (0) adds nothing, so caches written before the field
  existed keep their keys."""
  out = [codec_name, sorted(codec_kwargs.items())]
  return out + [f"encode_version={encode_version}"] if encode_version else out


def _cache_key(path: str, codec_name: str, codec_kwargs: dict,
               encode_version: int = 0) -> str:
  """BadAudio if `path` is not a regular file (see file_identity)."""
  h = hashlib.sha1(json.dumps(
      file_identity(path) + _codec_identity(codec_name, codec_kwargs,
                                            encode_version)).encode())
  return h.hexdigest()
