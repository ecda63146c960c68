"""musicnn (Pons & Serra, 2019) in JAX: tag probabilities and embeddings.

The weights are musicnn's own (ISC licence, `weights/LICENSE.musicnn`),
converted once from its TF1 checkpoints by tools/convert_musicnn.py; the
port is tested against the original TF graph on fixed inputs
(tests/eval/test_eval_musicnn.py, fixture written by
tools/musicnn_reference.py).
Neither TensorFlow nor musicnn is needed here.

Two models ship (same architecture, 787,159 parameters each):
  MTT_musicnn  MagnaTagATune tags: instruments and styles ('piano',
               'guitar', 'strings', 'violin', 'harpsichord', 'classical',
               'choir', ...). The default, as in musicnn itself, because
               prompt-adherence checks need instrument tags.
  MSD_musicnn  Million Song Dataset tags (last.fm): genres and eras
               ('rock', 'jazz', 'electronic', '80s', 'guitar', ...); no
               'piano', 'strings' or 'classical'.

Pipeline (musicnn/extractor.py, exactly):
  audio   mono float32 at 16 kHz
  mel     librosa power mel spectrogram, n_fft 512, hop 256 (16 ms), 96
          Slaney mel bands 0-8 kHz, centred frames -> [frames, 96]
  log     log10(10000 * mel + 1), mel stored as float16 (see `log_mel`)
  patches 187 frames (2.992 s), hop 187 by default (musicnn's
          `input_overlap=False`); a trailing partial patch is dropped
  network [P, 187, 96] -> front-end (timbral convs 7x38 / 7x67 over
          time x frequency, temporal convs 128/64/32 over time, each
          ReLU -> BN -> max over frequency: 2*204 + 3*51 = 561 channels)
          -> mid-end (three 7-tap convs over time, 64 channels, residual)
          -> 753 channels per frame -> max and mean over time (753 each,
          interleaved max_0, mean_0, max_1, ...) -> BN -> dense 200 +
          ReLU -> BN (= 'penultimate') -> dense 50 -> sigmoid.
Outputs per patch: `taggram` [P, 50] (sigmoid probabilities, multi-label),
`penultimate` [P, 200] (the default embedding: musicnn's 'penultimate'
feature), `mean_pool` / `max_pool` [P, 753] (its pooled mid-end features).

Preprocessing difference that matters: musicnn computes the log
compression in float16 (`np.log10(10000 * float16_mel + 1)`), which
overflows to inf once a mel band's power exceeds 6.55, i.e. for a pure
tone above about 0.11 of full scale (-19 dBFS). The original network then
returns NaN (recorded in the fixture: `loud_sine`). `log_mel(exact=True)`
reproduces that bit for bit (parity tests); the default `exact=False`
keeps musicnn's float16 rounding of the mel power (what the models were
trained on: musicnn-training stores float16 spectrograms) and does the
log in float32, which never overflows and differs from the exact values
only by float16 rounding of the log (< 2.5e-3 absolute) where those are
finite.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Dict, List, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

SAMPLE_RATE = 16000
N_FFT = 512
HOP = 256
N_MELS = 96
PATCH_FRAMES = 187              # librosa.time_to_frames(3 s) + 1
PATCH_SECONDS = PATCH_FRAMES * HOP / SAMPLE_RATE      # 2.992
MIN_SAMPLES = (PATCH_FRAMES - 1) * HOP               # 1 + n // 256 >= 187
MODELS = ("MTT_musicnn", "MSD_musicnn")
DEFAULT_MODEL = "MTT_musicnn"
EMBEDDINGS = {"penultimate": 200, "mean_pool": 753, "max_pool": 753}
DEFAULT_EMBEDDING = "penultimate"
FLOAT16_MAX = 65504.0

_TIMBRAL = ("timbral_38", "timbral_67")
_TEMPORAL = ("temporal_128", "temporal_64", "temporal_32")
_MID = ("mid_1", "mid_2", "mid_3")


def canonical_model(name: str) -> str:
  """'mtt', 'MSD', 'msd_musicnn', 'MTT_musicnn' -> 'MTT_musicnn' etc."""
  key = str(name).lower().replace("-", "_")
  if not key.endswith("_musicnn"):
    key += "_musicnn"
  for m in MODELS:
    if m.lower() == key:
      return m
  raise ValueError(f"unknown musicnn model {name!r}; choose from "
                   f"{list(MODELS)} (or 'mtt' / 'msd')")


# ---------------------------------------------------------------- features

def mel_power(audio: np.ndarray) -> np.ndarray:
  """Mono 16 kHz audio [samples] -> librosa power mel [frames, 96] float32.

  The arguments are musicnn's (extractor.batch_data) with librosa's
  defaults written out so a change of librosa defaults cannot change the
  features: centred frames, zero padding ('constant', librosa >= 0.10;
  musicnn-era librosa 0.7 padded by reflection, which only changes the
  first and last frame), Hann window, power 2, Slaney mel bands 0-8 kHz.
  frames = 1 + samples // 256.
  """
  import librosa
  audio = np.asarray(audio, np.float32)
  if audio.ndim != 1:
    raise ValueError(f"audio must be mono [samples], got shape {audio.shape}"
                     " (use `to_mono_16k` for files)")
  if not np.isfinite(audio).all():
    raise ValueError("audio holds NaN or inf samples")
  return librosa.feature.melspectrogram(
      y=audio, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS,
      center=True, pad_mode="constant", power=2.0, window="hann",
      htk=False, norm="slaney", fmin=0.0, fmax=None).T


def log_mel(audio: np.ndarray, exact: bool = False) -> np.ndarray:
  """Mono 16 kHz audio [samples] -> musicnn's log-mel input [frames, 96].

  exact=True: musicnn's arithmetic bit for bit (float16 throughout; +inf
  where 10000 * mel > 65504), returned as float16.
  exact=False (default): mel power rounded to float16 as in training, then
  log10(10000 * mel + 1) in float32; always finite. float32.
  """
  mel = mel_power(audio)
  if exact:
    rep = mel.astype(np.float16)
    with np.errstate(over="ignore"):
      return np.log10(10000 * rep + 1)
  rep = np.minimum(mel, FLOAT16_MAX).astype(np.float16).astype(np.float32)
  return np.log10(np.float32(10000) * rep + np.float32(1))


def patch_starts(frames: int, hop_frames: int = PATCH_FRAMES) -> np.ndarray:
  """First frame of each patch (musicnn's batching): 0, hop, ... while a
  whole 187-frame patch fits."""
  if hop_frames < 1:
    raise ValueError(f"patch hop must be >= 1 frame, got {hop_frames}")
  return np.arange(0, max(frames - PATCH_FRAMES + 1, 0), hop_frames)


def make_patches(rep: np.ndarray, hop_frames: int = PATCH_FRAMES):
  """[frames, 96] -> (patches [P, 187, 96] float32, start frames [P]).

  ValueError if not even one patch fits (audio shorter than 2.976 s)."""
  rep = np.asarray(rep)
  if rep.ndim != 2 or rep.shape[1] != N_MELS:
    raise ValueError(f"log-mel must be [frames, {N_MELS}], got {rep.shape}")
  starts = patch_starts(rep.shape[0], hop_frames)
  if len(starts) == 0:
    raise ValueError(
        f"musicnn needs at least {PATCH_FRAMES} frames ({MIN_SAMPLES} "
        f"samples = {MIN_SAMPLES / SAMPLE_RATE:.3f} s at 16 kHz), got "
        f"{rep.shape[0]} frames")
  idx = starts[:, None] + np.arange(PATCH_FRAMES)[None]
  return rep[idx].astype(np.float32), starts


# ----------------------------------------------------------------- weights

def load_weights(model: str = DEFAULT_MODEL) -> Dict[str, np.ndarray]:
  """The shipped float32 weights of `model` (package data) as a flat dict
  {'timbral_38/kernel': ..., 'tags': [50] str, ...}."""
  from importlib import resources
  model = canonical_model(model)
  ref = resources.files("lmdm_jax.eval").joinpath(
      "weights", model.lower() + ".npz")
  with resources.as_file(ref) as path:
    with np.load(path, allow_pickle=False) as z:
      return {k: z[k] for k in z.files}


def _conv(x, kernel, padding):
  """NHWC conv, stride 1, float32 accumulation at full precision."""
  return jax.lax.conv_general_dilated(
      x, kernel, window_strides=(1, 1), padding=padding,
      dimension_numbers=("NHWC", "HWIO", "NHWC"),
      precision=jax.lax.Precision.HIGHEST)


def _block(p, name, y):
  """ReLU(conv + bias) -> BN (scale/shift); y [..., C]."""
  y = jax.nn.relu(y + p[f"{name}/bias"])
  return y * p[f"{name}/bn_scale"] + p[f"{name}/bn_shift"]


def forward(p: Dict[str, jnp.ndarray],
            x: jnp.ndarray) -> Dict[str, jnp.ndarray]:
  """musicnn on log-mel patches x [B, 187, 96] (float32).

  -> {'taggram' [B, 50], 'logits' [B, 50], 'penultimate' [B, 200],
      'mean_pool' [B, 753], 'max_pool' [B, 753]}. `p` holds the arrays of
  `load_weights` (without 'tags'). Pure function; `Musicnn` jits it.
  """
  hi = jax.lax.Precision.HIGHEST
  t = x.shape[1]
  x = x[..., None] * p["bn_input/scale"] + p["bn_input/shift"]   # [B,T,F,1]
  # Front-end. Timbral: zero padding of 3 frames (after the input BN, as
  # musicnn), 'valid' conv over time x frequency, max over frequency.
  xp = jnp.pad(x, ((0, 0), (3, 3), (0, 0), (0, 0)))
  feats = []
  for name in _TIMBRAL:
    k = p[f"{name}/kernel"][:, :, None, :]                    # [7, kf, 1, C]
    y = _block(p, name, _conv(xp, k, "VALID"))
    feats.append(y.max(axis=2))                               # [B, T, C]
  # Temporal: TF 'same' over time (k-1 split floor before / ceil after),
  # kernel width 1 over frequency, max over frequency.
  for name in _TEMPORAL:
    k = p[f"{name}/kernel"][:, :, None, :]                    # [kt, 1, 1, C]
    kt = k.shape[0]
    pad = ((kt - 1) // 2, kt - 1 - (kt - 1) // 2)
    y = _block(p, name, _conv(x, k, (pad, (0, 0))))
    feats.append(y.max(axis=2))
  front = jnp.concatenate(feats, axis=-1)                     # [B, T, 561]
  # Mid-end: 7-tap convs over time with all channels as input ('valid'
  # after padding 3), residual from the second one on.
  mids, h = [], front
  for i, name in enumerate(_MID):
    hp = jnp.pad(h, ((0, 0), (3, 3), (0, 0)))
    k = p[f"{name}/kernel"]                                   # [7, Cin, 64]
    win = jnp.stack([hp[:, j:j + t] for j in range(k.shape[0])], axis=2)
    y = _block(p, name, jnp.einsum("btjc,jco->bto", win, k, precision=hi))
    h = y if i == 0 else y + h
    mids.append(h)
  feat = jnp.concatenate([front] + mids, axis=-1)             # [B, T, 753]
  # Back-end.
  max_pool, mean_pool = feat.max(axis=1), feat.mean(axis=1)
  # musicnn concatenates [B, 753, 1] max and mean on the last axis and
  # flattens: the 1506 inputs interleave (max_0, mean_0, max_1, ...).
  z = jnp.stack([max_pool, mean_pool], axis=-1).reshape(x.shape[0], -1)
  z = z * p["bn_pool/scale"] + p["bn_pool/shift"]
  z = jax.nn.relu(jnp.dot(z, p["dense/kernel"], precision=hi)
                  + p["dense/bias"])
  pen = z * p["bn_dense/scale"] + p["bn_dense/shift"]
  logits = jnp.dot(pen, p["logits/kernel"], precision=hi) + p["logits/bias"]
  return {"taggram": jax.nn.sigmoid(logits), "logits": logits,
          "penultimate": pen, "mean_pool": mean_pool, "max_pool": max_pool}


_forward_jit = jax.jit(forward)


# ------------------------------------------------------------------ model

@dataclasses.dataclass
class MusicnnOutput:
  """Per-patch results for one signal. P = number of patches."""
  taggram: np.ndarray        # [P, 50] sigmoid tag probabilities
  penultimate: np.ndarray    # [P, 200]
  mean_pool: np.ndarray      # [P, 753]
  max_pool: np.ndarray       # [P, 753]
  starts: np.ndarray         # [P] patch start times in seconds
  tags: List[str]

  def embeddings(self, layer: str = DEFAULT_EMBEDDING) -> np.ndarray:
    if layer not in EMBEDDINGS:
      raise ValueError(f"unknown embedding layer {layer!r}; choose from "
                       f"{list(EMBEDDINGS)}")
    return getattr(self, layer)


class Musicnn:
  """musicnn with shipped weights; jitted forward over fixed-size chunks.

    net = Musicnn()                      # MTT_musicnn
    out = net(audio_16k_mono)            # MusicnnOutput, per 2.992 s patch
    out.taggram, out.embeddings()        # [P, 50], [P, 200]

  Patches go through the network in chunks of `chunk` (padded with zeros,
  discarded), so the number of compiled shapes stays small: 1, 2, 4, ...,
  `chunk`.
  """

  def __init__(self, model: str = DEFAULT_MODEL, chunk: int = 8,
               exact: bool = False):
    if chunk < 1:
      raise ValueError(f"chunk must be >= 1, got {chunk}")
    self.model = canonical_model(model)
    w = load_weights(self.model)
    self.tags = [str(t) for t in w.pop("tags")]
    self.params = jax.tree_util.tree_map(jnp.asarray, w)
    self.chunk = chunk
    self.exact = exact

  def _sizes(self, n: int):
    """Splits n patches into chunk-sized calls; the last is rounded up to a
    power of two (<= chunk)."""
    out = []
    while n > 0:
      size = self.chunk if n >= self.chunk else min(
          self.chunk, 1 << (n - 1).bit_length())
      out.append((min(n, size), size))
      n -= min(n, size)
    return out

  def run_patches(self, patches: np.ndarray) -> Dict[str, np.ndarray]:
    """patches [P, 187, 96] -> dict of numpy arrays (see `forward`)."""
    patches = np.asarray(patches, np.float32)
    if patches.ndim != 3 or patches.shape[1:] != (PATCH_FRAMES, N_MELS):
      raise ValueError(f"patches must be [P, {PATCH_FRAMES}, {N_MELS}], got "
                       f"{patches.shape}")
    outs, i = [], 0
    for used, size in self._sizes(len(patches)):
      x = np.zeros((size, PATCH_FRAMES, N_MELS), np.float32)
      x[:used] = patches[i:i + used]
      y = _forward_jit(self.params, jnp.asarray(x))
      outs.append({k: np.asarray(v)[:used] for k, v in y.items()})
      i += used
    if not outs:
      return {k: np.zeros((0, d), np.float32) for k, d in
              dict(EMBEDDINGS, taggram=50, logits=50).items()}
    return {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}

  def __call__(self, audio: np.ndarray,
               hop_seconds: Optional[float] = None) -> MusicnnOutput:
    """Mono 16 kHz audio [samples] -> per-patch outputs. hop_seconds: the
    patch hop (musicnn's `input_overlap`), default one patch (2.992 s)."""
    hop = PATCH_FRAMES if hop_seconds is None else int(
        round(hop_seconds * SAMPLE_RATE / HOP))
    if hop < 1:
      raise ValueError(f"hop_seconds must be >= {HOP / SAMPLE_RATE} s, got "
                       f"{hop_seconds}")
    x, starts = make_patches(log_mel(audio, exact=self.exact), hop)
    y = self.run_patches(x)
    return MusicnnOutput(taggram=y["taggram"], penultimate=y["penultimate"],
                         mean_pool=y["mean_pool"], max_pool=y["max_pool"],
                         starts=starts * HOP / SAMPLE_RATE, tags=self.tags)


@functools.lru_cache(maxsize=4)
def get_musicnn(model: str = DEFAULT_MODEL, exact: bool = False) -> Musicnn:
  """A shared `Musicnn` per (model, exact): weights load once."""
  return Musicnn(canonical_model(model), exact=exact)


def to_mono_16k(audio: np.ndarray, sample_rate: int) -> np.ndarray:
  """[samples] or [channels, samples] at any rate -> mono float32 at 16 kHz
  (channel mean, then librosa's default soxr_hq resampler, as
  librosa.load(sr=16000) in musicnn)."""
  audio = np.asarray(audio, np.float32)
  if audio.ndim == 2:
    audio = audio.mean(axis=0)
  elif audio.ndim != 1:
    raise ValueError(f"audio must be [samples] or [channels, samples], got "
                     f"{audio.shape}")
  if sample_rate <= 0:
    raise ValueError(f"sample_rate must be positive, got {sample_rate}")
  if sample_rate != SAMPLE_RATE:
    import librosa
    audio = librosa.resample(audio, orig_sr=sample_rate,
                             target_sr=SAMPLE_RATE)
  return np.ascontiguousarray(audio, np.float32)


def top_tags(probs: Sequence[float], tags: Sequence[str], k: int = 5):
  """[(tag, probability)] of the k largest, highest first."""
  probs = np.asarray(probs)
  order = np.argsort(-probs, kind="stable")[:k]
  return [(str(tags[i]), float(probs[i])) for i in order]
