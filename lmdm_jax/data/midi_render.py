"""Score -> audio: MIDI re-timing, per-part stems and fluidsynth synthesis.

The rendering layer of `lmdm data demo` (lmdm_jax/data/demo.py), which
chooses what to render; this module knows MIDI and fluidsynth only:

  fonts = find_soundfonts()                     # GM .sf2 files installed
  n = retime_midi(raw, mid, programs, bpm, max_seconds)   # n note tracks
  audio = synthesise(mid, fonts[0], seconds)    # [samples, 2] float32
  stems = split_parts(mid, out_dir)             # part00.mid, part01.mid, ...
"""
from __future__ import annotations

import os
import subprocess
from typing import List, Sequence

import numpy as np

# .sf3 (Ogg-compressed) fonts are decompressed whole at every fluidsynth
# start (12 s for MuseScore_General_Lite against 1-3 s for an .sf2 here), so
# the default search looks at sf2 only; pass --soundfont-dir to add others.
SOUNDFONT_DIRS = ("/usr/share/sounds/sf2",)

def find_soundfonts(dirs: Sequence[str] = SOUNDFONT_DIRS) -> List[str]:
  """Distinct GM soundfont files (symlinks such as default-GM resolved)."""
  seen, out = set(), []
  for d in dirs:
    if not os.path.isdir(d):
      continue
    for f in sorted(os.listdir(d)):
      if not f.lower().endswith((".sf2", ".sf3")):
        continue
      real = os.path.realpath(os.path.join(d, f))
      if os.path.isfile(real) and real not in seen:
        seen.add(real)
        out.append(real)
  return out


def split_parts(mid: str, out_dir: str) -> List[str]:
  """One MIDI file per note track of a retimed file (tempo tracks kept)."""
  import mido
  src = mido.MidiFile(mid)
  note_tracks = [i for i, t in enumerate(src.tracks)
                 if any(m.type == "note_on" for m in t)]
  paths = []
  for k, i in enumerate(note_tracks):
    out = mido.MidiFile(type=1, ticks_per_beat=src.ticks_per_beat)
    for j, t in enumerate(src.tracks):
      if j == i or j not in note_tracks:
        out.tracks.append(t)
    path = os.path.join(out_dir, f"part{k:02d}.mid")
    out.save(path)
    paths.append(path)
  return paths


def retime_midi(src: str, dst: str, programs: Sequence[int], bpm: float,
                max_seconds: float) -> int:
  """Rewrites music21's MIDI: one channel and program per part, one tempo,
  events after max_seconds dropped. -> number of note tracks."""
  import mido
  mid = mido.MidiFile(src)
  tempo = mido.bpm2tempo(bpm)
  max_ticks = int(max_seconds * bpm / 60.0 * mid.ticks_per_beat)
  channels = [c for c in range(16) if c != 9]
  out = mido.MidiFile(type=1, ticks_per_beat=mid.ticks_per_beat)
  part, ch = 0, channels[0]
  for track in mid.tracks:
    has_notes = any(m.type == "note_on" for m in track)
    new = mido.MidiTrack()
    if has_notes:
      ch = channels[part % len(channels)]
      prog = programs[part % len(programs)]
      new.append(mido.Message("program_change", channel=ch, program=prog,
                              time=0))
      part += 1
    else:
      new.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
    now, last, held = 0, 0, set()
    for m in track:
      now += m.time
      if m.type == "set_tempo" or m.type == "program_change":
        continue
      if m.is_meta and m.type == "end_of_track":
        continue
      if now > max_ticks:
        # Release what still sounds: a sustained voice never decays, and
        # fluidsynth's file renderer would wait for it forever.
        for i, note in enumerate(sorted(held)):
          new.append(mido.Message("note_off", channel=ch, note=note,
                                  time=(max_ticks - last) if i == 0 else 0))
        break
      if not m.is_meta and hasattr(m, "channel"):
        m = m.copy(channel=ch)
      if m.type == "note_on" and m.velocity > 0:
        held.add(m.note)
      elif m.type in ("note_off", "note_on"):
        held.discard(m.note)
      new.append(m.copy(time=now - last))
      last = now
    new.append(mido.MetaMessage("end_of_track", time=0))
    out.tracks.append(new)
  out.save(dst)
  return part


SAMPLE_RATE = 44100
RELEASE_SECONDS = 3.0       # rendered after the last MIDI event


def synthesise(mid: str, soundfont: str, seconds: float,
               timeout_s: float = 120.0) -> np.ndarray:
  """fluidsynth's fast renderer -> [samples, 2] float32 of `seconds`.

  Raw 16-bit stereo is read from fluidsynth's stdout and the process is
  killed once `seconds` have arrived: on some files fluidsynth 2.3's file
  renderer never sees the end of the song and writes audio forever (seen
  here: 2,000 s of output for a 37 s folk tune), so the length comes from
  the MIDI file, not from fluidsynth. A watchdog kills it after timeout_s.
  """
  import threading
  want = int(seconds * SAMPLE_RATE) * 4
  proc = subprocess.Popen(
      ["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(SAMPLE_RATE),
       "-T", "raw", "-O", "s16", "-F", "-", soundfont, mid],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  watchdog = threading.Timer(timeout_s, proc.kill)
  watchdog.start()
  try:
    chunks, got = [], 0
    while got < want:
      chunk = proc.stdout.read(min(1 << 20, want - got))
      if not chunk:
        break
      chunks.append(chunk)
      got += len(chunk)
  finally:
    watchdog.cancel()
    proc.kill()
    _, err = proc.communicate()
  buf = b"".join(chunks)
  buf = buf[:len(buf) // 4 * 4]
  if not buf:
    raise RuntimeError(f"fluidsynth wrote no audio: "
                       f"{err.decode(errors='replace').strip()[:200]}")
  return np.frombuffer(buf, "<i2").reshape(-1, 2).astype(np.float32) / 32768
