"""`lmdm data demo`: the embedded demo dataset, built offline.

Real music with no download: scores shipped in the music21 wheel's corpus
(Bach chorales, folk tunes, string quartets, Renaissance polyphony, piano
pieces) rendered score -> MIDI -> fluidsynth -> 44.1 kHz stereo FLAC with
General-MIDI ensembles, tempos and soundfonts drawn per rendering, plus the
recorded orchestral tracks of Debian's `wesnoth-1.16-music` when installed.

  apt-get install fluidsynth timgm6mb-soundfont fluid-soundfont-gm \
      musescore-general-soundfont-small wesnoth-1.16-music     # Debian
  pip install -e ".[data,demo]"                                 # music21, mido
  lmdm data demo --out DEMO                  # audio + captions + README
  lmdm data build --audio-dir DEMO/audio/train --codec semitone --out DEMO/tfds

Layout of --out:

  audio/{train,heldout}/<group>/<piece>__<variant>.flac   (+ .txt caption)
  README.md             sources, licences, what was rendered
  demo_report.json      hours, pieces, instruments, build time, failures

Captions come from metadata only: tempo word and bpm, composer, genre, key
and mode (music21's key analysis), ensemble, and "rendered MIDI" or
"recorded". The split is by piece (a stable hash of the corpus path), never
by crop, so held-out pieces are unseen in every rendering. Known render
pitfalls are handled: every part gets its own MIDI channel (never 9, the
drum channel) and program, fluidsynth runs under `timeout`, renders are
written to a temporary name and renamed, so a re-run resumes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from lmdm_jax.data.midi_render import (RELEASE_SECONDS, SAMPLE_RATE,
                                     SOUNDFONT_DIRS, find_soundfonts,
                                     retime_midi, split_parts, synthesise)

WESNOTH_MUSIC = "/usr/share/games/wesnoth/1.16/data/core/music"

# The fonts the recipe draws between (by file name, in draw order): the
# draw is over this tuple, not over whatever happens to be installed, so a
# machine with more fonts in /usr/share/sounds/sf2 (e.g. Debian's
# musescore-general-soundfont) renders the same dataset as the one the
# shipped models were trained on. A missing one is replaced by an installed
# one (reported: the audio then differs from the shipped data).
RECIPE_SOUNDFONTS = ("FluidR3_GM.sf2", "TimGM6mb.sf2")

# name -> (programs per part, cycled), GM numbering from 0.
ENSEMBLES: Dict[str, Tuple[int, ...]] = {
    "string quartet": (40, 40, 41, 42),
    "string ensemble": (48,),
    "church organ": (19,),
    "choir": (52,),
    "brass quartet": (56, 56, 57, 58),
    "woodwind quartet": (73, 68, 71, 70),
    "solo piano": (0,),
    "harpsichord": (6,),
    "fiddle": (40,),
    "flute": (73,),
    "accordion": (21,),
    "acoustic guitar": (24,),
}


@dataclasses.dataclass(frozen=True)
class Group:
  """A family of corpus scores rendered the same way."""
  name: str                 # folder under audio/<split>/
  composers: Tuple[str, ...]  # music21 corpus top-level folders
  genre: str                # caption noun: "chorale", "folk tune", ...
  ensembles: Tuple[str, ...]
  bpm: Tuple[int, int]      # range of quarter-note tempi drawn from
  max_pieces: int
  variants: int = 1         # renderings per piece
  min_parts: int = 1
  max_parts: int = 8
  composer_name: str = ""   # caption name ("" = none)


RECIPE: Tuple[Group, ...] = (
    Group("bach_chorales", ("bach",), "chorale",
          ("string ensemble", "string quartet", "church organ", "choir",
           "brass quartet", "woodwind quartet", "solo piano"),
          (52, 100), 300, variants=1, min_parts=4, max_parts=5,
          composer_name="Bach"),
    Group("folk", ("ryansMammoth", "oneills1850", "essenFolksong"),
          "folk tune", ("fiddle", "flute", "accordion", "solo piano",
                        "acoustic guitar"),
          (84, 150), 120, variants=1, max_parts=2),
    Group("quartets", ("beethoven", "mozart", "haydn"), "string quartet",
          ("string quartet", "string ensemble", "solo piano"),
          (60, 132), 30, variants=1, min_parts=2,
          composer_name=""),
    Group("renaissance", ("palestrina", "monteverdi", "josquin"),
          "Renaissance polyphony", ("choir", "church organ",
                                    "string ensemble", "woodwind quartet"),
          (56, 96), 40, variants=1, min_parts=3),
    Group("piano", ("joplin", "chopin", "schumann_robert", "schumann_clara",
                    "schubert", "beach", "handel", "cpebach", "corelli"),
          "piece", ("solo piano", "harpsichord"), (60, 120), 30),
)

COMPOSER_NAMES = {
    "bach": "Bach", "beethoven": "Beethoven", "mozart": "Mozart",
    "haydn": "Haydn", "palestrina": "Palestrina", "monteverdi":
    "Monteverdi", "josquin": "Josquin", "joplin": "Joplin", "chopin":
    "Chopin", "schumann_robert": "Robert Schumann", "schumann_clara":
    "Clara Schumann", "schubert": "Schubert", "beach": "Amy Beach",
    "handel": "Handel", "cpebach": "C. P. E. Bach", "corelli": "Corelli",
    "ryansMammoth": "", "oneills1850": "Irish", "essenFolksong": "European",
}

LICENCES = """\
| source | licence |
| --- | --- |
| music21 corpus scores (`music21/corpus`) | encodings distributed with music21 (BSD-3 package) by permission; the works are public domain in the US; see `music21/corpus/license.txt` — some encodings restrict commercial use |
| FluidR3_GM.sf2 (`fluid-soundfont-gm`) | MIT |
| TimGM6mb.sf2 (`timgm6mb-soundfont`) | GPL-2 |
| MuseScore_General_Lite.sf3 (`musescore-general-soundfont-small`, only with `--soundfont-dir /usr/share/sounds/sf3`) | MIT |
| Battle for Wesnoth music (`wesnoth-1.16-music`) | GPL-2+ (Debian copyright file of the package) |
"""


def tempo_word(bpm: float) -> str:
  return "slow" if bpm < 72 else ("moderate" if bpm <= 108 else "fast")


def stable_unit(key: str) -> float:
  """A machine-independent uniform number in [0, 1) for a string."""
  h = hashlib.blake2b(key.encode(), digest_size=8).digest()
  return int.from_bytes(h, "little") / 2.0 ** 64


def split_of(piece_id: str, heldout_fraction: float) -> str:
  """'heldout' or 'train', by piece (a stable hash), never by crop."""
  return "heldout" if stable_unit("split:" + piece_id) < heldout_fraction \
      else "train"


def _slug(text: str) -> str:
  keep = "".join(c if c.isalnum() else "_" for c in text)
  return "_".join(p for p in keep.split("_") if p)[:80]


def corpus_pieces(group: Group) -> List[str]:
  """Corpus paths (relative to the corpus root) of a group, sorted."""
  from music21 import corpus
  root = None
  out = []
  for comp in group.composers:
    for p in corpus.getComposer(comp):
      p = str(p)
      if root is None:
        root = p.split("/corpus/")[0] + "/corpus/"
      out.append(p.split("/corpus/", 1)[1])
  return sorted(set(out))


@dataclasses.dataclass
class Job:
  group: Group
  piece: str                # corpus-relative path
  variant: int
  ensemble: str
  bpm: int
  soundfont: str
  out_path: str             # .flac (caption beside it as .txt)
  max_seconds: float
  stems: bool = False       # also render each part alone (see stems_dir)


def stems_dir(out_path: str) -> str:
  """Where a rendering's stems go: <out>/stems/<split>/<group>/<name>/
  part00.flac, ... (outside audio/, so they never become training examples
  of their own). The mix at out_path is exactly their sum."""
  head, name = os.path.split(out_path)
  parts = head.split(os.sep)
  if "audio" in parts:
    i = len(parts) - 1 - parts[::-1].index("audio")
    parts[i] = "stems"
  return os.path.join(os.sep.join(parts), os.path.splitext(name)[0])


def _crop(score, quarters: float):
  """The first measures of `score` covering `quarters` quarter notes (one
  spare): music21's MIDI writer expands repeats with deep copies, which
  takes minutes on a whole mass or quartet movement we would cut anyway."""
  try:
    measures = list(score.parts[0].getElementsByClass("Measure"))
  except Exception:  # noqa: BLE001
    return score
  total, n = 0.0, 0
  for m in measures:
    total += float(m.duration.quarterLength)
    n += 1
    if total > quarters:
      break
  if n >= len(measures) or n == 0:
    return score
  first = measures[0].number
  try:
    return score.measures(first, first + n)
  except Exception:  # noqa: BLE001  (odd scores: render them whole)
    return score


def render_job(job: Job, timeout_s: float = 120.0) -> dict:
  """Renders one piece; returns its metadata or {'error': reason}."""
  import soundfile as sf
  from music21 import corpus
  meta = dict(piece=job.piece, group=job.group.name, variant=job.variant,
              ensemble=job.ensemble, bpm=job.bpm,
              soundfont=os.path.basename(job.soundfont), path=job.out_path)
  if os.path.exists(job.out_path) and os.path.exists(
      job.out_path[:-5] + ".json"):
    with open(job.out_path[:-5] + ".json") as f:
      done = json.load(f)
    if not job.stems or done.get("stems"):
      return done                              # rendered by an earlier run
  try:
    score = corpus.parse(job.piece)
    if hasattr(score, "scores"):               # an Opus: take its first
      score = score.scores[0]
    parts = len(score.parts)
    if not job.group.min_parts <= parts <= job.group.max_parts:
      return dict(meta, error=f"{parts} parts outside "
                  f"[{job.group.min_parts}, {job.group.max_parts}]")
    try:
      key = score.analyze("key")
      tonic = key.tonic.name.replace("-", " flat").replace("#", " sharp")
      key_text = f"{tonic} {key.mode}"
    except Exception:  # noqa: BLE001  (analysis fails on unpitched scores)
      key_text = ""
    score = _crop(score, job.max_seconds * job.bpm / 60.0)
    with tempfile.TemporaryDirectory() as tmp:
      raw, mid = os.path.join(tmp, "raw.mid"), os.path.join(tmp, "out.mid")
      score.write("midi", fp=raw)
      n = retime_midi(raw, mid, ENSEMBLES[job.ensemble], job.bpm,
                      job.max_seconds)
      if n == 0:
        return dict(meta, error="no notes")
      import mido
      seconds = mido.MidiFile(mid).length + RELEASE_SECONDS
      stems = None
      if job.stems:
        # Each part alone; the mix is their sum (fluidsynth is linear in
        # the voices), so stems and mix agree exactly.
        stems = [synthesise(p, job.soundfont, seconds, timeout_s)
                 for p in split_parts(mid, tmp)]
        n_max = max(a.shape[0] for a in stems)
        stems = [np.pad(a, ((0, n_max - a.shape[0]), (0, 0)))
                 for a in stems]
        x = np.sum(stems, axis=0)
      else:
        x = synthesise(mid, job.soundfont, seconds, timeout_s)
      sr = SAMPLE_RATE
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak < 1e-3:
      return dict(meta, error="silent render")
    gain = min(1.0, 0.89 / peak)               # no clipping
    x = x * gain
    if stems is not None:
      sdir = stems_dir(job.out_path)
      os.makedirs(sdir, exist_ok=True)
      meta["stems"] = []
      for k, a in enumerate(stems):
        path = os.path.join(sdir, f"part{k:02d}.flac")
        # 24-bit so the stems sum to the (16-bit) mix within its rounding.
        sf.write(path, a * gain, sr, format="FLAC", subtype="PCM_24")
        meta["stems"].append(path)
      meta["stem_programs"] = [
          ENSEMBLES[job.ensemble][k % len(ENSEMBLES[job.ensemble])]
          for k in range(len(stems))]
    os.makedirs(os.path.dirname(job.out_path), exist_ok=True)
    tmp_out = f"{job.out_path}.{os.getpid()}.part"
    sf.write(tmp_out, x, sr, format="FLAC")
    os.replace(tmp_out, job.out_path)
  except Exception as e:  # noqa: BLE001  (a bad score must not stop a build)
    return dict(meta, error=f"{type(e).__name__}: {e}"[:300])
  composer = job.piece.split("/")[0]
  name = job.group.composer_name or COMPOSER_NAMES.get(composer, "")
  words = [tempo_word(job.bpm), name, job.group.genre]
  if key_text:
    words.append(f"in {key_text}")
  caption = (" ".join(w for w in words if w) +
             f" for {job.ensemble}, {job.bpm} bpm, rendered MIDI")
  meta.update(caption=caption, key=key_text, parts=parts,
              seconds=x.shape[0] / sr, sample_rate=sr)
  with open(job.out_path[:-5] + ".txt", "w") as f:
    f.write(caption + "\n")
  with open(job.out_path[:-5] + ".json", "w") as f:
    json.dump(meta, f)
  return meta


def recipe_soundfonts(dirs: Sequence[str] = SOUNDFONT_DIRS,
                      names: Sequence[str] = RECIPE_SOUNDFONTS,
                      ) -> Tuple[List[str], Dict[str, str]]:
  """-> (one path per name in `names`, {missing name: the file used instead}).

  A missing font is replaced by the first installed font of `names`, else by
  the first font found in `dirs`; FileNotFoundError if `dirs` holds none."""
  found = find_soundfonts(dirs)
  if not found:
    raise FileNotFoundError(
        f"no GM soundfont found in {', '.join(dirs)}; install one, e.g. "
        f"`apt-get install timgm6mb-soundfont fluid-soundfont-gm`")
  by_name = {}
  for d in dirs:                      # the names as listed (symlinks too)
    if os.path.isdir(d):
      for f in sorted(os.listdir(d)):
        real = os.path.realpath(os.path.join(d, f))
        if os.path.isfile(real):
          by_name.setdefault(f, real)
  present = [by_name[n] for n in names if n in by_name]
  fallback = present[0] if present else found[0]
  paths, substituted = [], {}
  for n in names:
    if n in by_name:
      paths.append(by_name[n])
    else:
      paths.append(fallback)
      substituted[n] = os.path.basename(fallback)
  return paths, substituted


def plan(out: str, recipe: Sequence[Group] = RECIPE, seed: int = 0,
         soundfonts: Optional[Sequence[str]] = None,
         heldout_fraction: float = 0.05, max_seconds: float = 240.0,
         limit: Optional[int] = None, stems: bool = False) -> List[Job]:
  """Every rendering of the recipe, deterministic in seed.

  soundfonts: the fonts drawn between (paths); default the recipe's
  (`recipe_soundfonts`), so the plan does not depend on what else is
  installed."""
  soundfonts = list(soundfonts or recipe_soundfonts()[0])
  if not soundfonts:
    raise ValueError("soundfonts is empty")
  jobs = []
  for g in recipe:
    pieces = corpus_pieces(g)
    rng = np.random.default_rng([seed, int(stable_unit(g.name) * 2**31)])
    if len(pieces) > g.max_pieces:
      pieces = sorted(rng.choice(pieces, g.max_pieces, replace=False))
    for piece in pieces:
      split = split_of(piece, heldout_fraction)
      for v in range(g.variants):
        r = np.random.default_rng(
            [seed, v, int(stable_unit(piece) * 2**31)])
        ens = g.ensembles[r.integers(len(g.ensembles))]
        bpm = int(r.integers(g.bpm[0], g.bpm[1] + 1))
        sf2 = soundfonts[r.integers(len(soundfonts))]
        name = f"{_slug(os.path.splitext(piece)[0])}__{v}.flac"
        jobs.append(Job(g, str(piece), v, ens, bpm, sf2,
                        os.path.join(out, "audio", split, g.name, name),
                        max_seconds, stems))
  if limit is not None:
    jobs = jobs[:limit]
  return jobs


def add_wesnoth(out: str, music_dir: str = WESNOTH_MUSIC,
                heldout_fraction: float = 0.05) -> List[dict]:
  """Links the recorded Wesnoth tracks into the dataset with captions."""
  if not os.path.isdir(music_dir):
    return []
  import soundfile as sf
  metas = []
  for f in sorted(os.listdir(music_dir)):
    if not f.endswith(".ogg") or f.startswith("silence"):
      continue
    stem = os.path.splitext(f)[0]
    split = split_of("wesnoth/" + stem, heldout_fraction)
    dst = os.path.join(out, "audio", split, "wesnoth", f)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    if not os.path.lexists(dst):
      os.symlink(os.path.join(music_dir, f), dst)
    title = stem.replace("_", " ").replace("-", " ")
    caption = (f"orchestral soundtrack, {title}, recorded orchestra, "
               f"Battle for Wesnoth")
    with open(dst[:-4] + ".txt", "w") as fh:
      fh.write(caption + "\n")
    info = sf.info(dst)
    metas.append(dict(piece="wesnoth/" + stem, group="wesnoth", variant=0,
                      ensemble="orchestra", caption=caption, path=dst,
                      seconds=info.duration, sample_rate=info.samplerate,
                      soundfont="recorded"))
  return metas


def build_demo(out: str, workers: int = 2, seed: int = 0,
               heldout_fraction: float = 0.05, max_seconds: float = 240.0,
               limit: Optional[int] = None, wesnoth: bool = True,
               soundfont_dirs: Optional[Sequence[str]] = None,
               log=print, stems: bool = False) -> dict:
  """Renders the recipe into `out`; resumable. -> the report dict.

  soundfont_dirs: None draws between the recipe's fonts
  (`RECIPE_SOUNDFONTS` in /usr/share/sounds/sf2, a missing one replaced
  and reported); given folders draw between every font found there.
  stems: also render every part alone into out/stems/ (`stems_dir`), for
  accompaniment (jamming) training; the mix is the sum of its stems."""
  if shutil.which("fluidsynth") is None:
    raise FileNotFoundError("fluidsynth not found; `apt-get install "
                            "fluidsynth` (Debian) first")
  t0 = time.time()
  substituted = {}
  if soundfont_dirs is None:
    fonts, substituted = recipe_soundfonts()
    for name, used in substituted.items():
      log(f"[demo] {name} is not installed: its renderings use {used} "
          f"instead, so the audio differs from the shipped models' data "
          f"(Debian: apt-get install fluid-soundfont-gm timgm6mb-soundfont)")
  else:
    fonts = find_soundfonts(soundfont_dirs)
    if not fonts:
      raise FileNotFoundError(
          f"no .sf2/.sf3 soundfont in {', '.join(soundfont_dirs)}")
  jobs = plan(out, seed=seed, heldout_fraction=heldout_fraction,
              max_seconds=max_seconds, limit=limit,
              soundfonts=fonts, stems=stems)
  log(f"[demo] {len(jobs)} renderings with {workers} worker(s)")
  results = []
  if workers > 1:
    import multiprocessing as mp
    with mp.get_context("spawn").Pool(workers) as pool:
      for i, r in enumerate(pool.imap_unordered(render_job, jobs)):
        results.append(r)
        if (i + 1) % 25 == 0:
          log(f"[demo] {i + 1}/{len(jobs)} ({time.time() - t0:.0f} s)")
  else:
    for i, j in enumerate(jobs):
      results.append(render_job(j))
      if (i + 1) % 25 == 0:
        log(f"[demo] {i + 1}/{len(jobs)} ({time.time() - t0:.0f} s)")
  if wesnoth:
    results += add_wesnoth(out, heldout_fraction=heldout_fraction)
  ok = [r for r in results if "error" not in r]
  failed = [r for r in results if "error" in r]
  report = dict(
      renderings=len(ok), failed=len(failed),
      stems=sum(len(r.get("stems", [])) for r in ok),
      pieces=len({r["piece"] for r in ok}),
      hours=sum(r["seconds"] for r in ok) / 3600.0,
      build_seconds=time.time() - t0, seed=seed,
      heldout_fraction=heldout_fraction,
      splits={s: dict(files=sum(f"/{s}/" in r["path"] for r in ok),
                      hours=sum(r["seconds"] for r in ok
                                if f"/{s}/" in r["path"]) / 3600.0)
              for s in ("train", "heldout")},
      groups={g: dict(files=sum(r["group"] == g for r in ok),
                      hours=sum(r["seconds"] for r in ok
                                if r["group"] == g) / 3600.0)
              for g in sorted({r["group"] for r in ok})},
      ensembles={e: sum(r["ensemble"] == e for r in ok)
                 for e in sorted({r["ensemble"] for r in ok})},
      soundfonts={s: sum(r["soundfont"] == s for r in ok)
                  for s in sorted({r["soundfont"] for r in ok})},
      soundfont_substitutions=substituted,
      failures=[dict(piece=r["piece"], error=r["error"]) for r in failed])
  with open(os.path.join(out, "demo_report.json"), "w") as f:
    json.dump(report, f, indent=2)
  _write_readme(out, report)
  return report


def _write_readme(out: str, report: dict) -> None:
  lines = [
      "# lmdm_jax demo dataset", "",
      "Built offline by `lmdm data demo` (lmdm_jax/data/demo.py).", "",
      f"- {report['renderings']} files, {report['pieces']} pieces, "
      f"{report['hours']:.2f} h of audio; {report['failed']} renderings "
      f"failed (see demo_report.json)",
      f"- split by piece: train {report['splits']['train']['hours']:.2f} h,"
      f" held-out {report['splits']['heldout']['hours']:.2f} h", "",
      "## Sources and licences", "", LICENCES,
      "Rendered audio inherits the terms of its score encoding and "
      "soundfont; keep this dataset for research and do not redistribute "
      "renders without checking each piece.", ""]
  with open(os.path.join(out, "README.md"), "w") as f:
    f.write("\n".join(lines))
