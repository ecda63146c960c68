"""`lmdm data build`: a folder of audio -> a TFDS dataset of codec latents.

The dataset ("lmdm_latents", split "train") is written with array_record
and plain features only, so it is read back without TensorFlow
(`tfds.builder_from_directory(...).as_data_source("train")`, or grain):

  latents       Tensor [frames, latent_channels] float32
  caption       Text   (from --captions or a sidecar <stem>.txt; "" if none)
  source        Text   file path relative to the audio folder
  duration      float32 seconds of the original file
  sample_rate   int32  sample rate of the original file
  frames        int32  latent frames
  control_<n>   Tensor [frames, dim + 1] float32, only with --controls:
                sketch control n packed [values, mask] at the latent frame
                rate (lmdm_jax/data/controls.py)
  control_partner  Tensor [frames, latent_channels + 1] float32, only with
                --stems: a partner's latents packed [latents, mask]
                (jamming); all zeros (absent) on mix records

Stems (--stems, accompaniment/jamming data): a file whose parts were
rendered alone (`lmdm data demo --stems` writes them to
`lmdm_jax.data.demo.stems_dir`, or --stems-dir DIR holds
DIR/<file without extension>/*.flac|wav) gives, besides its mix record, one
record per part k: `latents` = the codec's latents of the other parts'
sum (the accompaniment to generate), `control_partner` = part k's latents
(what the partner plays), source "<file>#part<k>". Sketch controls of
those records are absent (they are computed for mix records only: the
model learns each conditioning alone and the two together via dropout,
and the controls' cost is not paid once per part). Silent parts or
accompaniments are skipped with their reason.

Files that are unreadable/corrupt, silent, contain NaN/inf, or are shorter
than `min_frames` latent frames are skipped and listed with their reason in
<out>/<name>_build_report.json; so are names with an audio extension that
are not regular files (a dangling symlink, a symlink loop, a FIFO, a
device: these are never opened, and are not cached, so a fixed link is
picked up by the next run). Symlinks to regular files are followed.
Encodings are cached per file under <out>/<name>_encoded/ (keyed by
absolute path, size, mtime and codec; the cache's records name their files
relative to the cache, so a re-run from another working directory, or of
a moved <out>, reuses them), so a re-run after an interruption, or with
files added, only encodes what is new. --workers N encodes files (with
their controls and parts) in N spawned processes, one codec each, and
takes their results in file order, so the dataset is the one-process
build's. A build holds <out>/.build.lock
(a second build into the same folder is refused) and removes the
`incomplete.*` folder a killed TFDS write leaves, then writes the dataset
again from the cached encodings.

What a build reads (audio files, captions, stems, a file's identity):
lmdm_jax/data/sources.py; reading the dataset back:
lmdm_jax/data/reading.py.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
from typing import Dict, Optional

import numpy as np
import tensorflow_datasets as tfds

from lmdm_jax.model.control_inputs import PARTNER
from lmdm_jax.data import audio as audio_lib
# What a dataset may hold and how it is opened live with the reader; the
# names stay importable from here.
from lmdm_jax.data.reading import (  # noqa: F401
    FEATURE_CLASSES, VERSION, built_codec, check_codec, check_features,
    open_dataset)
from lmdm_jax.data.sources import (  # noqa: F401
    caption_for, file_identity, find_audio, find_stems, read_captions)


class LmdmLatents(tfds.core.GeneratorBasedBuilder):
  """Codec latents of a local audio folder (see the module docstring)."""

  VERSION = tfds.core.Version(VERSION)

  def __init__(self, *, items=None, latent_channels: int = 64,
               controls: Optional[Dict[str, int]] = None,
               partner: bool = False, **kwargs):
    self._items = items or []
    self._latent_channels = latent_channels
    self._controls = dict(controls or {})
    if partner:
      self._controls[PARTNER] = latent_channels
    super().__init__(**kwargs)

  def _info(self):
    return tfds.core.DatasetInfo(
        builder=self,
        description="Codec latents of a local audio folder (lmdm_jax).",
        features=tfds.features.FeaturesDict({
            "latents": tfds.features.Tensor(
                shape=(None, self._latent_channels), dtype=np.float32),
            "caption": tfds.features.Text(),
            "source": tfds.features.Text(),
            "duration": np.float32,
            "sample_rate": np.int32,
            "frames": np.int32,
            **{f"control_{n}": tfds.features.Tensor(shape=(None, d + 1),
                                                     dtype=np.float32)
               for n, d in self._controls.items()},
        }))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    for item in self._items:
      z = np.load(item["latents_path"])
      yield item["source"], {
          "latents": z, "caption": item["caption"],
          "source": item["source"],
          "duration": np.float32(item["duration"]),
          "sample_rate": np.int32(item["sample_rate"]),
          "frames": np.int32(z.shape[0]),
          **_load_controls(item, self._controls)}


def _load_controls(item, controls: Dict[str, int]) -> dict:
  """control_<name> arrays of a record; absent ones (a mix record's
  partner, a part record's sketch controls) are zeros."""
  out = {}
  frames = int(item["frames"])
  stored = {}
  if item.get("controls_path"):
    with np.load(item["controls_path"]) as f:
      stored = {n: f[n].astype(np.float32) for n in f.files}
  for n, d in controls.items():
    if n == PARTNER and item.get("partner_path"):
      z = np.load(item["partner_path"]).astype(np.float32)
      out[f"control_{n}"] = np.concatenate(
          [z, np.ones((z.shape[0], 1), np.float32)], axis=1)
    elif n in stored:
      out[f"control_{n}"] = stored[n]
    else:
      out[f"control_{n}"] = np.zeros((frames, d + 1), np.float32)
  return out


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


def _encode_file(rel: str, cod, audio_dir: str, cache: str, codec: str,
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
    key = _cache_key(path, codec, codec_kwargs)
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
          json.dumps([codec, sorted(codec_kwargs.items())]))
      out["skipped"].extend(skip)
  return out


_WORKER = {}


def _worker_init(codec: str, codec_kwargs: dict, job: dict) -> None:
  _WORKER.update(cod=_make_codec(codec, codec_kwargs), job=job)


def _worker_encode(rel: str) -> dict:
  return _encode_file(rel, _WORKER["cod"], **_WORKER["job"])


def _encoded(files, job: dict, cod, workers: int):
  """`_encode_file` of every file, in `files`' order (so the dataset is
  the same whatever `workers` is): in this process, or in `workers`
  spawned processes each with its own codec."""
  if workers <= 1 or len(files) < 2:
    for rel in files:
      yield _encode_file(rel, cod, **job)
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


def _cache_key(path: str, codec_name: str, codec_kwargs: dict) -> str:
  """BadAudio if `path` is not a regular file (see file_identity)."""
  h = hashlib.sha1(json.dumps(
      file_identity(path) + [codec_name, sorted(codec_kwargs.items())]
  ).encode())
  return h.hexdigest()


def _lock(out: str):
  """An exclusive lock on <out>/.build.lock (released when the process
  ends, however it ends). ValueError if another build holds it."""
  import fcntl
  f = open(os.path.join(out, ".build.lock"), "w")
  try:
    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError as e:
    f.close()
    raise ValueError(f"another `lmdm data build` is writing to {out}") from e
  return f


def remove_incomplete(out: str, name: str) -> list:
  """Removes the `incomplete.*` folders a killed TFDS write leaves in
  <out>/<name>/ (call with the build lock held); returns them."""
  gone = sorted(glob.glob(os.path.join(out, name, "incomplete.*")))
  for d in gone:
    shutil.rmtree(d, ignore_errors=True)
  return gone


def _make_codec(codec: str, kwargs: dict):
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


def build(audio_dir: str, out: str, codec: str = "pool",
          codec_kwargs: Optional[dict] = None, captions: Optional[str] = None,
          min_frames: int = 256, name: str = "lmdm_latents",
          log=print, controls=(), pitch_method: str = "pyin",
          stems: bool = False, stems_dir: Optional[str] = None,
          parts_per_file: Optional[int] = None,
          mem_buffer_gb: float = 8.0, workers: int = 1) -> dict:
  """Encodes audio_dir with the codec and writes the TFDS dataset to out.

  Returns the report (also written to <out>/<name>_build_report.json):
  counts, dataset path and `skipped` [{file, reason}]. `controls`: sketch
  control names to compute from each file's audio and store
  (lmdm_jax/data/controls.py; cached per file like the latents).
  `pitch_method`: "pyin" (default, ~0.36 s per second of audio on a
  2-core CPU) or "yin" (~25x faster, loudness-gated voicing).
  `stems` / `stems_dir`: also write one accompaniment record per part of
  every file that has stems (see the module docstring); `stems_dir` implies
  `stems`. `parts_per_file`: keep at most this many part records per
  file (parts picked by a hash of the file name, so a re-build keeps the
  same ones; all parts are encoded and cached either way), to balance
  accompaniment records against mix records. `mem_buffer_gb`: the
  dataset is shuffled in memory up to this size (past it TFDS needs
  TensorFlow). `workers`: encode (and extract controls, and encode parts)
  in this many spawned processes, each with its own codec; the dataset is
  the same as with one (files are taken in the same order), only the
  wall time differs (`--stems` builds: every part is encoded twice, as
  itself and inside an accompaniment, so they are the slow ones).
  """
  from lmdm_jax.data import controls as extract
  from lmdm_jax.data import features as control_features
  if pitch_method not in control_features.PITCH_METHODS:
    raise ValueError(f"pitch_method must be one of "
                     f"{control_features.PITCH_METHODS}, got {pitch_method!r}")
  controls = list(controls or ())
  control_dims = extract.dims(controls)
  if not os.path.isdir(audio_dir):
    raise ValueError(f"--audio-dir is not a directory: {audio_dir}")
  if name != LmdmLatents.name:
    raise ValueError(f"the dataset name is {LmdmLatents.name!r}, got "
                     f"{name!r}")
  if min_frames < 1:
    raise ValueError(f"min_frames must be >= 1, got {min_frames}")
  if stems_dir is not None and not os.path.isdir(stems_dir):
    raise ValueError(f"--stems-dir is not a directory: {stems_dir}")
  stems = stems or stems_dir is not None
  if parts_per_file is not None and parts_per_file < 1:
    raise ValueError(f"parts_per_file must be >= 1, got {parts_per_file}")
  if workers < 1:
    raise ValueError(f"workers must be >= 1, got {workers}")
  if workers > 1 and codec == "oobleck":
    raise ValueError("--workers > 1 is for the numpy codecs: oobleck "
                     "encodes in batches on one accelerator (one process)")
  codec_kwargs = dict(codec_kwargs or {})
  cod = _make_codec(codec, codec_kwargs)
  caps = read_captions(captions)
  out = os.path.abspath(out)
  os.makedirs(out, exist_ok=True)
  lock = _lock(out)
  try:
    return _build_locked(audio_dir, out, name, codec, codec_kwargs, cod,
                         caps, min_frames, log, controls, control_dims,
                         pitch_method, stems, stems_dir, parts_per_file,
                         mem_buffer_gb, workers)
  finally:
    lock.close()


def _build_locked(audio_dir, out, name, codec, codec_kwargs, cod, caps,
                  min_frames, log, controls, control_dims, pitch_method,
                  stems, stems_dir, parts_per_file, mem_buffer_gb,
                  workers=1) -> dict:
  for d in remove_incomplete(out, name):
    log(f"[data] removed {d}, left by an interrupted write")
  cache = os.path.join(out, f"{name}_encoded")
  os.makedirs(cache, exist_ok=True)
  items, skipped, reused, parts = [], [], 0, 0
  files = find_audio(audio_dir)
  job = dict(audio_dir=audio_dir, cache=cache, codec=codec,
             codec_kwargs=codec_kwargs, min_frames=min_frames,
             controls=controls, pitch_method=pitch_method, stems=stems,
             stems_dir=stems_dir)
  for rel, got in zip(files, _encoded(files, job, cod, workers)):
    skipped.extend(got["skipped"])
    reused += got["reused"]
    meta = got["meta"]
    if meta is None:
      continue
    meta["caption"] = caption_for(rel, audio_dir, caps)
    items.append(meta)
    recs = got["parts"]
    if parts_per_file is not None and len(recs) > parts_per_file:
      first = int(hashlib.sha1(rel.encode()).hexdigest(), 16) % len(recs)
      recs = [recs[(first + j) % len(recs)] for j in range(parts_per_file)]
    items.extend(dict(r, caption=meta["caption"]) for r in recs)
    parts += len(recs)
  if not items:
    raise ValueError(f"no usable audio in {audio_dir} ({len(skipped)} "
                     f"skipped)")
  if stems and not parts:
    raise ValueError(f"--stems: no file in {audio_dir} has stems (looked in "
                     f"{stems_dir or 'the demo layout, <out>/stems/...'})")
  # TFDS shuffles in memory up to a buffer limit (1 GB) and past it spills
  # to disk through tf.io.gfile, i.e. needs TensorFlow, which this project
  # does not install. Raise the limit (datasets with controls and partner
  # latents pass 1 GB at demo scale); beyond it, install tensorflow-cpu.
  from tensorflow_datasets.core import shuffle as tfds_shuffle
  tfds_shuffle.MAX_MEM_BUFFER_SIZE = max(tfds_shuffle.MAX_MEM_BUFFER_SIZE,
                                         int(mem_buffer_gb * (1 << 30)))
  builder = LmdmLatents(items=items, latent_channels=cod.latent_channels,
                        controls=control_dims, partner=stems, data_dir=out,
                        file_format="array_record")
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
      download_mode=tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS))
  report = {
      "dataset_dir": builder.data_dir, "name": name, "codec": codec,
      "codec_kwargs": codec_kwargs, "frame_rate": cod.frame_rate,
      "latent_channels": cod.latent_channels, "files": len(files),
      "controls": dict(control_dims, **(
          {PARTNER: cod.latent_channels} if stems else {})),
      "examples": len(items), "part_records": parts,
      "reused_encodings": reused,
      "frames": int(sum(i["frames"] for i in items)),
      "skipped": skipped,
      "report_path": os.path.join(out, f"{name}_build_report.json")}
  with open(report["report_path"], "w") as f:
    json.dump(report, f, indent=2)
  return report
