"""Codec round-trip quality and speed on a real recording.

  lmdm bench codec --codec mel --audio music.ogg --seconds 30 --json out.json

Metrics (audio x, decoded y = decode(encode(x)), both [2, samples]):
  lsd_db: log-spectral distance, the RMS over frequency of the difference of
    the dB power spectra (2048-point STFT, hop 512), averaged over frames and
    channels; frames more than 60 dB below the loudest are skipped (silence
    dominates LSD otherwise).
  mel_snr_db: 10 log10(|M|^2 / |M - M'|^2) of 128-band mel power
    spectrograms (independent of the codec's own filters), all channels.
  log_mel_l1_db: mean |dB difference| of the same mel spectrograms.
  latent_rt_mae: mean |encode(y) - encode(x)| in latent units (how
    consistent the inverse is with the encoder: 0 for a perfect inverse).
  encode_rtf / decode_rtf: seconds of audio per second of compute (> 1 is
    faster than real time), best of `repeats`.
"""
from __future__ import annotations

import json
import time

import numpy as np

from lmdm_jax.codecs.base import Codec
from lmdm_jax.codecs.mel import mel_filters, stft


def load_audio(path: str, sample_rate: int, channels: int, offset_s: float,
               seconds: float) -> np.ndarray:
  """Reads `seconds` from `offset_s` of a file -> float32 [channels, samples].

  Resamples with a polyphase filter if the file's rate differs; mono files
  are duplicated to stereo.
  """
  import soundfile as sf  # optional: the `data` extra
  from scipy.signal import resample_poly
  info = sf.info(path)
  start = int(offset_s * info.samplerate)
  stop = start + int(seconds * info.samplerate) if seconds > 0 else None
  a, sr = sf.read(path, start=start, stop=stop, dtype="float32",
                  always_2d=True)
  a = a.T
  if a.shape[1] == 0:
    raise ValueError(f"{path}: no audio after {offset_s} s")
  if a.shape[0] == 1 and channels == 2:
    a = np.repeat(a, 2, axis=0)
  if a.shape[0] != channels:
    raise ValueError(f"{path} has {a.shape[0]} channels, codec wants "
                     f"{channels}")
  if sr != sample_rate:
    g = np.gcd(int(sr), int(sample_rate))
    a = resample_poly(a, sample_rate // g, sr // g, axis=1).astype(np.float32)
  return a


def _power_db(x, n_fft=2048, hop=512):
  window = np.hanning(n_fft + 1)[:-1]
  frames = x.shape[-1] // hop
  p = np.abs(stft(x.astype(np.float64), window, hop, frames)) ** 2
  return 10 * np.log10(p + 1e-12)


def log_spectral_distance(x: np.ndarray, y: np.ndarray) -> float:
  """Mean over frames of the RMS dB difference. x, y [channels, samples]."""
  px, py = _power_db(x), _power_db(y)
  loud = px.max(-1) > px.max() - 60
  d = np.sqrt(np.mean((px - py) ** 2, axis=-1))
  return float(d[loud].mean())


def mel_metrics(x: np.ndarray, y: np.ndarray, sample_rate: int):
  """(SNR dB, mean |dB difference|) of 128-band mel power spectrograms.

  x, y [channels, samples].
  """
  fb = mel_filters(sample_rate, 2048, 128, 0.0, sample_rate / 2)
  window = np.hanning(2049)[:-1]
  frames = x.shape[-1] // 512

  def mel(a):
    return np.abs(stft(a.astype(np.float64), window, 512, frames)) ** 2 @ fb.T

  mx, my = mel(x), mel(y)
  snr = 10 * np.log10(np.sum(mx ** 2) / np.sum((mx - my) ** 2))
  l1 = np.mean(np.abs(10 * np.log10(mx + 1e-10) - 10 * np.log10(my + 1e-10)))
  return float(snr), float(l1)


def measure(codec: Codec, audio: np.ndarray, repeats: int = 2) -> dict:
  """Round-trip metrics and real-time factors of `codec` on `audio`."""
  audio = codec.check_audio(audio)
  frames = audio.shape[1] // codec.hop
  audio = audio[:, :frames * codec.hop]
  seconds = audio.shape[1] / codec.sample_rate
  enc_t, dec_t = [], []
  for _ in range(repeats):
    t0 = time.perf_counter()
    z = codec.encode(audio)
    enc_t.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    y = codec.decode(z)
    dec_t.append(time.perf_counter() - t0)
  snr, l1 = mel_metrics(audio, y, codec.sample_rate)
  return {
      "codec": codec.name, "seconds": seconds, "frames": int(frames),
      "latent_channels": codec.latent_channels,
      "latent_mean": float(z.mean()), "latent_std": float(z.std()),
      "lsd_db": log_spectral_distance(audio, y),
      "mel_snr_db": snr, "log_mel_l1_db": l1,
      "latent_rt_mae": float(np.abs(codec.encode(y) - z).mean()),
      "encode_s": min(enc_t), "decode_s": min(dec_t),
      "encode_rtf": seconds / min(enc_t), "decode_rtf": seconds / min(dec_t),
  }


# -- candidate comparison (issue 19) -------------------------------------------
# `compare` runs every codec on the same clips and reports, per codec and
# clip set, the round trip against the raw clip:
#   chord_tone / chord_tone_raw: per frame, is the raw clip's strongest CQT
#     pitch class a tone of the triad that best fits the round trip's CQT
#     chroma (adherence.chord_tone_agreement with the raw mix as "partner");
#     `_raw` is the raw clip against itself (the ceiling), the ratio the
#     target (>= 0.9).
#   stems_chord_tone: held-out chorales with stems (docs/control.md's
#     measure): the raw partner part vs the accompaniment (other parts)
#     through the codec; `stems_chord_tone_raw` with the raw accompaniment.
#   pitch_accuracy: adherence.pitch_accuracy of the round trip's pitch track
#     against the raw clip's (features.pitch, `pitch_method`); the raw clip
#     against itself is 1 by definition, so the value is the ratio.
#   onset_f1: librosa onsets of the round trip vs the raw clip's (50 ms).
#   mrstft_db: mean |dB difference| of STFT magnitudes at 4 resolutions.
#   mono_loss_db: stereo level minus mono-mix level of the round trip (the
#     raw clip's beside it); > 3 dB means a mono mix loses much.
#   fd: musicnn Frechet distance of round-trip vs raw patch embeddings
#     (all clips of a set, equal counts by construction).
#   encode_rtf / decode_rtf / stream_decode_rtf: x real time on this CPU
#     (stream: 24-frame blocks through `stream_decoder` where the codec has
#     one, else block-wise `decode`).

def list_audio_files(directory: str):
  """Sorted audio files (flac, ogg, wav, mp3) under `directory`."""
  import os
  out = []
  for root, _, files in os.walk(directory, followlinks=True):
    out += [os.path.join(root, f) for f in files
            if f.lower().endswith((".flac", ".ogg", ".wav", ".mp3"))]
  return sorted(out)


def crops(files, n: int, seconds: float, sample_rate: int,
          skip_s: float = 5.0, min_rms_db: float = -45.0):
  """n deterministic crops [(name, audio [2, S])]: crop 0 of every file (at
  `skip_s`), then crop 1 of every file, ... skipping near-silent crops and
  crops past a file's end."""
  import soundfile as sf
  dur = {f: sf.info(f).duration for f in files}
  out, c = [], 0
  while len(out) < n:
    added = False
    for f in files:
      start = skip_s + c * seconds
      if start + seconds > dur[f] or len(out) >= n:
        continue
      a = load_audio(f, sample_rate, 2, start, seconds)
      added = True
      if 10 * np.log10(np.mean(a.astype(np.float64) ** 2) + 1e-20) \
          < min_rms_db:
        continue
      out.append((f"{f}@{start:.0f}s", a))
    if not added:
      break
    c += 1
  return out


def mrstft_distance(x: np.ndarray, y: np.ndarray,
                    sizes=(512, 1024, 2048, 4096)) -> float:
  """Mean over resolutions of mean |20 log10 |X| - 20 log10 |Y||, Hann
  windows of `sizes` at 75 % overlap, magnitudes floored at 1e-5 (-100 dB)
  so silence does not dominate. x, y [channels, samples]."""
  n = min(x.shape[-1], y.shape[-1])
  out = []
  for size in sizes:
    w = np.hanning(size + 1)[:-1]
    frames = n // (size // 4)
    mx = np.abs(stft(x[..., :n].astype(np.float64), w, size // 4, frames))
    my = np.abs(stft(y[..., :n].astype(np.float64), w, size // 4, frames))
    norm = w.sum() / 2                      # full-scale sine -> 1
    out.append(np.mean(np.abs(20 * np.log10(np.maximum(mx / norm, 1e-5))
                              - 20 * np.log10(np.maximum(my / norm, 1e-5)))))
  return float(np.mean(out))


def mono_loss_db(audio: np.ndarray) -> float:
  """Stereo level minus mono-mix ((L + R) / 2) level, dB, [2, samples]."""
  a = audio.astype(np.float64)
  st = np.mean(a ** 2)
  mo = np.mean((0.5 * (a[0] + a[1])) ** 2)
  return float(10 * np.log10((st + 1e-20) / (mo + 1e-20)))


def _chord_tone_vs(raw, other, sr, frame_rate):
  from lmdm_jax.eval import adherence as A
  frames = int(min(raw.shape[-1], other.shape[-1]) / sr * frame_rate)
  pcs = A.partner_pitch_classes(raw, sr, frame_rate, frames)
  return A.chord_tone_agreement(pcs, A.chroma_cqt(other, sr, frame_rate,
                                                  frames))


def clip_metrics(raw: np.ndarray, out: np.ndarray, sr: int,
                 frame_rate: float, pitch_method: str = "yin",
                 raw_pitch=None) -> dict:
  """Round-trip `out` vs `raw` (both [2, samples]) for one clip.
  raw_pitch: features.pitch of `raw` at this length, if already known."""
  from lmdm_jax.data import features as F
  from lmdm_jax.eval import adherence as A
  n = min(raw.shape[-1], out.shape[-1])
  raw, out = raw[:, :n], out[:, :n]
  frames = int(n / sr * frame_rate)
  rm, rv = raw_pitch or F.pitch(raw, sr, frame_rate, frames,
                                method=pitch_method)
  gm, gv = F.pitch(out, sr, frame_rate, frames, method=pitch_method)
  return {
      "chord_tone": _chord_tone_vs(raw, out, sr, frame_rate),
      "pitch_accuracy": A.pitch_accuracy(rm, rv, gm, gv),
      "chroma_accuracy": A.pitch_accuracy(rm, rv, gm, gv,
                                          octave_invariant=True),
      "onset_f1": A.onset_f1(raw, out, sr),
      "mrstft_db": mrstft_distance(raw, out),
      "mono_loss_db": mono_loss_db(out),
  }


def raw_metrics(raw: np.ndarray, sr: int, frame_rate: float) -> dict:
  return {"chord_tone_raw": _chord_tone_vs(raw, raw, sr, frame_rate),
          "mono_loss_db_raw": mono_loss_db(raw)}


def speed(codec: Codec, audio: np.ndarray, block: int = 24,
          repeats: int = 2) -> dict:
  """Encode, whole decode and block-wise stream decode real-time factors."""
  frames = audio.shape[1] // codec.hop
  audio = audio[:, :frames * codec.hop]
  seconds = audio.shape[1] / codec.sample_rate
  enc, dec, stream_t = [], [], []
  for _ in range(repeats):
    t0 = time.perf_counter()
    z = codec.encode(audio)
    enc.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    codec.decode(z)
    dec.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    if hasattr(codec, "stream_decoder"):
      d = codec.stream_decoder()
      for i in range(0, frames, block):
        d.push(z[i:i + block])
      d.flush()
    else:
      for i in range(0, frames, block):
        codec.decode(z[i:i + block])
    stream_t.append(time.perf_counter() - t0)
  return {"encode_rtf": seconds / min(enc), "decode_rtf": seconds / min(dec),
          "stream_decode_rtf": seconds / min(stream_t),
          "speed_seconds": seconds}


def _nanmean(v):
  v = np.asarray([x for x in v if x is not None], float)
  return float(np.nanmean(v)) if v.size and np.isfinite(v).any() else None


def compare(codecs, clip_sets, stem_clips=None, pitch_method: str = "yin",
            fd: bool = True, progress=None) -> dict:
  """Every codec on the same clips.

  codecs: {name: Codec}; clip_sets: {set name: [(clip name, audio)]};
  stem_clips: [(name, partner [2, S], accompaniment [2, S])] or None.
  -> {"sets": {set: {"raw": {...}, codec: {...means...}}}, "stems": ...}.
  """
  log = progress or (lambda *a: None)
  some = next(iter(codecs.values()))
  sr, frame_rate = some.sample_rate, some.frame_rate
  result = {"sets": {}, "pitch_method": pitch_method}
  mn = None
  if fd:
    from lmdm_jax.eval import metrics as M
    from lmdm_jax.eval import musicnn as mn_lib
    mn = mn_lib.get_musicnn()

    def embed(audios):
      return np.concatenate([mn(mn_lib.to_mono_16k(a, sr),
                                hop_seconds=1.0).embeddings()
                             for a in audios])
  for set_name, clips in clip_sets.items():
    raws = [a for _, a in clips]
    row = {"clips": len(clips), "seconds": float(sum(a.shape[1] for a in raws)
                                                 / sr)}
    rm = [raw_metrics(a, sr, frame_rate) for a in raws]
    from lmdm_jax.data import features as F
    # Every codec keeps the length (frames * hop of a whole-frame clip).
    raws = [a[:, :(a.shape[1] // some.hop) * some.hop] for a in raws]
    clips = [(c, a) for (c, _), a in zip(clips, raws)]
    raw_pitch = [F.pitch(a, sr, frame_rate, int(a.shape[1] / sr * frame_rate),
                         method=pitch_method) for a in raws]
    row["raw"] = {k: _nanmean([m[k] for m in rm]) for k in rm[0]}
    raw_emb = embed(raws) if fd else None
    if fd:
      # Real-vs-real floor: the first half of the clips against the second.
      h = len(raws) // 2
      row["raw"]["fd_half_vs_half"] = M.frechet_distance_embeddings(
          embed(raws[:h]), embed(raws[h:2 * h]))
      row["raw"]["fd_patches"] = int(len(raw_emb))
    for name, codec in codecs.items():
      t0 = time.perf_counter()
      outs, ms = [], []
      for (clip_name, a), rp in zip(clips, raw_pitch):
        y = codec.decode(codec.encode(a))
        outs.append(y)
        ms.append(clip_metrics(a, y, sr, frame_rate, pitch_method, rp))
      r = {k: _nanmean([m[k] for m in ms]) for k in ms[0]}
      r["chord_tone_ratio"] = (r["chord_tone"] / row["raw"]["chord_tone_raw"]
                               if row["raw"]["chord_tone_raw"] else None)
      if fd:
        r["fd"] = M.frechet_distance_embeddings(embed(outs), raw_emb)
      row[name] = r
      log(f"[codec] {set_name} {name}: {time.perf_counter() - t0:.0f} s "
          f"{json.dumps(r)}")
    result["sets"][set_name] = row
  if stem_clips:
    st = {"clips": len(stem_clips)}
    st["raw"] = _nanmean([_chord_tone_vs(p, acc, sr, frame_rate)
                          for _, p, acc in stem_clips])
    from lmdm_jax.data import features as F
    from lmdm_jax.eval import adherence as A
    ref_pitch = []
    for _, p, _ in stem_clips:
      frames = int(p.shape[1] / sr * frame_rate)
      ref_pitch.append((frames, F.pitch(p, sr, frame_rate, frames,
                                        method=pitch_method)))
    for name, codec in codecs.items():
      st[name] = _nanmean([
          _chord_tone_vs(p, codec.decode(codec.encode(acc)), sr, frame_rate)
          for _, p, acc in stem_clips])
      # Melody pitch: the monophonic partner part through the codec.
      pa = []
      for (frames, (rm, rv)), (_, p, _) in zip(ref_pitch, stem_clips):
        gm, gv = F.pitch(codec.decode(codec.encode(p)), sr, frame_rate,
                         frames, method=pitch_method)
        pa.append(A.pitch_accuracy(rm, rv, gm, gv))
      st[name + "_partner_pitch_accuracy"] = _nanmean(pa)
    result["stems_chord_tone"] = st
    log(f"[codec] stems chord tone {json.dumps(st)}")
  first = next(iter(clip_sets.values()))
  sample = np.concatenate([a for _, a in first[:3]], axis=1)
  result["speed"] = {name: speed(c, sample) for name, c in codecs.items()}
  return result


def compare_table(result: dict) -> str:
  """Markdown table of a `compare` result (one row per set and codec)."""
  cols = ("chord_tone", "chord_tone_ratio", "pitch_accuracy",
          "chroma_accuracy", "onset_f1", "mrstft_db", "mono_loss_db", "fd")
  lines = ["| set | codec | " + " | ".join(cols) + " |",
           "|---|---|" + "---:|" * len(cols)]
  fmt = lambda v: "–" if v is None else f"{v:.3f}"
  for s, row in result["sets"].items():
    raw = row["raw"]
    lines.append(f"| {s} ({row['clips']} clips) | raw | "
                 f"{fmt(raw.get('chord_tone_raw'))} | 1 | 1 | 1 | 1 | 0 | "
                 f"{fmt(raw.get('mono_loss_db_raw'))} | "
                 f"{fmt(raw.get('fd_half_vs_half'))} (half vs half) |")
    for name in result["codecs"] if "codecs" in result else ():
      r = row[name]
      lines.append(f"| {s} | {name} | "
                   + " | ".join(fmt(r.get(c)) for c in cols) + " |")
  if "stems_chord_tone" in result:
    st = result["stems_chord_tone"]
    lines.append("")
    lines.append(f"stems ({st['clips']} chorales): chord tone raw "
                 f"{fmt(st['raw'])}; " + "; ".join(
                     f"{n} {fmt(st.get(n))} (partner pitch acc "
                     f"{fmt(st.get(n + '_partner_pitch_accuracy'))})"
                     for n in result.get("codecs", ())))
  lines.append("")
  lines.append("speed (x real time): " + "; ".join(
      f"{n} encode {v['encode_rtf']:.1f}, decode {v['decode_rtf']:.1f}, "
      f"stream decode {v['stream_decode_rtf']:.1f}"
      for n, v in result["speed"].items()))
  return "\n".join(lines)
