"""What `lmdm data build` reads (lmdm_jax/data/builders.py): the audio files
of a folder, their captions (a captions file or sidecar <stem>.txt), the
stems of a mix, and the identity of a file the encoding cache is keyed by.
"""
from __future__ import annotations

import csv
import errno
import json
import os
import stat
from typing import Dict, Optional

from lmdm_jax.data import audio as audio_lib


def find_audio(audio_dir: str):
  """Sorted relative paths of the audio files under audio_dir."""
  out = []
  for root, _, files in os.walk(audio_dir):
    for f in files:
      if f.lower().endswith(audio_lib.AUDIO_EXTENSIONS):
        out.append(os.path.relpath(os.path.join(root, f), audio_dir))
  return sorted(out)


def read_captions(path: Optional[str]) -> Dict[str, str]:
  """file -> caption from CSV (columns file/path + caption/text), JSON
  ({file: caption} or [{file, caption}]) or JSONL ({file, caption} lines)."""
  if not path:
    return {}
  ext = os.path.splitext(path)[1].lower()
  rows = []
  with open(path, encoding="utf-8") as f:
    if ext == ".csv":
      rows = list(csv.DictReader(f))
    elif ext == ".jsonl":
      rows = [json.loads(line) for line in f if line.strip()]
    elif ext == ".json":
      data = json.load(f)
      if isinstance(data, dict):
        return {str(k): str(v) for k, v in data.items()}
      rows = data
    else:
      raise ValueError(f"captions file must be .csv, .json or .jsonl: {path}")
  out = {}
  for r in rows:
    key = r.get("file") or r.get("path") or r.get("filename")
    text = r.get("caption", r.get("text"))
    if key is None or text is None:
      raise ValueError(f"caption row needs file/path and caption/text "
                       f"fields: {r}")
    out[str(key)] = str(text)
  return out


def caption_for(rel: str, audio_dir: str, captions: Dict[str, str]) -> str:
  base, stem = os.path.basename(rel), os.path.splitext(rel)[0]
  for k in (rel, base, stem, os.path.basename(stem)):
    if k in captions:
      return captions[k]
  sidecar = os.path.join(audio_dir, stem + ".txt")
  if os.path.isfile(sidecar):        # regular files only (a FIFO blocks)
    with open(sidecar, encoding="utf-8") as f:
      return f.read().strip()
  return ""


def find_stems(path: str, rel: str, stems_root: Optional[str]):
  """Sorted stem files of one mix (empty if it has none): under
  stems_root/<rel without extension>/, else the demo layout
  (`lmdm_jax.data.demo.stems_dir`)."""
  from lmdm_jax.data import demo
  d = (os.path.join(stems_root, os.path.splitext(rel)[0]) if stems_root
       else demo.stems_dir(os.path.abspath(path)))
  if not os.path.isdir(d):
    return []
  return [os.path.join(d, f) for f in sorted(os.listdir(d))
          if f.lower().endswith(audio_lib.AUDIO_EXTENSIONS)]


def file_identity(path: str):
  """[absolute path, size, mtime_ns] of a regular file (symlinks followed).
  BadAudio (never OSError) for a dangling symlink, a symlink loop, a FIFO,
  a device or anything else that is not a regular file: such a file is
  skipped, never opened (reading a FIFO or /dev/zero would not end)."""
  try:
    st = os.stat(path)
  except OSError as e:
    kind = ("symlink loop" if e.errno == errno.ELOOP else
            "dangling symlink" if os.path.islink(path) else
            type(e).__name__)
    raise audio_lib.BadAudio(f"unreadable: {kind}: {e.strerror}") from e
  if not stat.S_ISREG(st.st_mode):
    kind = ("FIFO" if stat.S_ISFIFO(st.st_mode) else "device" if
            stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else
            "socket" if stat.S_ISSOCK(st.st_mode) else "directory" if
            stat.S_ISDIR(st.st_mode) else "special file")
    raise audio_lib.BadAudio(f"unreadable: not a regular file ({kind})")
  return [os.path.abspath(path), st.st_size, st.st_mtime_ns]
