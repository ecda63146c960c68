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
Encodings are cached per file under <out>/<name>_encoded/
(lmdm_jax/data/encode_cache.py; keyed by
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
from lmdm_jax.data.encode_cache import encoded, make_codec
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
  cod = make_codec(codec, codec_kwargs)
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
  for rel, got in zip(files, encoded(files, job, cod, workers)):
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
