"""Deterministic, checkpointable windows of latents for training.

Every batch is a pure function of (seed, batch index): example j of global
batch b is element i = b * B + j of an endless stream that visits the
dataset once per epoch in the order of a permutation seeded by (seed,
epoch), and crops one window of T frames at an offset seeded by (seed, i).
Hence:

  - the pipeline state is just the next batch index (saved next to the
    train state, so a resumed run reads exactly the batches it would have);
  - process p of P reads only rows [p * B/P, (p+1) * B/P) of each global
    batch (per-process sharding, no coordination);
  - a background thread prefetches the next batches.

Records come from a TFDS data source (random access to the array_record
files written by `lmdm data build`; no TensorFlow) or from a synthetic
source of random latents for tests and benchmarks.

Controls (models with `DiTConfig.controls` only, `controls` = name ->
dim): each batch also holds control_<name> [B, T, dim + 1] packed [values,
mask], cropped at the window's offset from the record's control_<name>
[frames, dim + 1] (written by `lmdm data build --controls ...`); the
partner control comes from a record's partner_latents [frames, C] (mask 1);
a control the record lacks is absent (zeros).

Conditioning: with `text_encoder` (a host callable, captions -> [B, L, Dc])
the cross tokens are the record captions' encodings; otherwise they are
zeros, the "unconditional" input. cfg.text.encoder picks it
(`text_encoder_for`):

  "hashed_words"  `lmdm_jax.text.hashed.HashedWords`; global cond zeros
  "t5"            the init package's (cfg.init.params) T5 and number
                  conditioners, assembled as stable-audio-tools does:
                  cross = T5 tokens (padding zeroed) ++ seconds_total
                  token, global = the seconds_total embedding
                  (`Pretrained.batch_conditioning`). seconds_total is the
                  package's stream input, the window length a stream
                  feeds. T5 runs batched and jitted here, in the prefetch
                  thread, on the default device (docs/training.md: why not
                  precomputed).

An encoder with `global_cond(n)` gives the global conditioning [n, G];
otherwise it is zeros.
"""
from __future__ import annotations

import concurrent.futures
from typing import Optional, Sequence

import numpy as np


class SyntheticSource:
  """n records of deterministic random latents [frames, channels] (and,
  with `controls` name -> dim, control_<name> curves [frames, dim + 1]:
  smoothed random values with a random absent stretch; a "partner" is the
  record's latents shifted by one block-ish offset)."""

  def __init__(self, n: int, frames: int, channels: int, seed: int = 0,
               controls=None):
    if n < 1 or frames < 1 or channels < 1:
      raise ValueError("synthetic source needs n, frames, channels >= 1")
    self.n, self.frames, self.channels, self.seed = n, frames, channels, seed
    self.controls = dict(controls or {})

  def __len__(self):
    return self.n

  def __getitem__(self, i):
    rng = np.random.default_rng([self.seed, int(i)])
    # Smooth-ish random latents: a random walk, so windows have structure.
    z = rng.normal(size=(self.frames, self.channels)).astype(np.float32)
    z = np.cumsum(z, axis=0) / np.sqrt(np.arange(1, self.frames + 1))[:, None]
    out = {"latents": z.astype(np.float32), "caption": f"synthetic {i}"}
    for name, dim in self.controls.items():
      if name == "partner":
        v = np.roll(z, 7, axis=0)[:, :dim]
        v = np.pad(v, [(0, 0), (0, dim - v.shape[1])])
        mask = np.ones(self.frames)
      else:
        v = np.cumsum(rng.normal(size=(self.frames, dim)), 0) / 4.0
        mask = np.ones(self.frames)
        a = rng.integers(0, self.frames)
        mask[a:a + self.frames // 8] = 0.0
      out[f"control_{name}"] = np.concatenate(
          [v * mask[:, None], mask[:, None]], -1).astype(np.float32)
    return out


def tfds_source(data_dir: str, name: str = "lmdm_latents",
                split: str = "train"):
  """Random-access source over a dataset written by `lmdm data build`."""
  from lmdm_jax.data import reading
  return reading.open_dataset(data_dir, name, split)


class WindowPipeline:
  """Iterator of this process's batch rows (numpy dicts).

  Each batch: latents [B_local, T, C] float32, cross_tokens [B_local, L, Dc]
  and global_cond [B_local, G] (zeros without an encoder's global_cond),
  index [B_local] int64 (dataset record of each row).
  """

  def __init__(self, source, window: int, global_batch: int, *,
               seed: int = 0, process_index: int = 0,
               process_count: int = 1, cond_shape: Sequence[int] = (1, 1),
               global_dim: int = 1, prefetch: int = 2,
               text_encoder=None, left_pad_short: bool = False,
               controls: Optional[dict] = None):
    if len(source) < 1:
      raise ValueError("the dataset is empty")
    if global_batch % process_count:
      raise ValueError(f"global batch {global_batch} does not divide over "
                       f"{process_count} processes")
    if not 0 <= process_index < process_count:
      raise ValueError(f"process_index {process_index} not in "
                       f"[0, {process_count})")
    self.source, self.window = source, window
    self.global_batch, self.seed = global_batch, seed
    self.local = global_batch // process_count
    self.first = process_index * self.local
    self.cond_shape, self.global_dim = tuple(cond_shape), global_dim
    self.prefetch = prefetch
    self.text_encoder = text_encoder
    # Records shorter than the window: an error, or zeros *before* them (the
    # stream's own look before it has context; ARC's long windows).
    self.left_pad_short = left_pad_short
    self.controls = dict(controls or {})
    self.next_batch = 0
    self._perm = (-1, None)         # (epoch, permutation) of the last read
    self._pool = (concurrent.futures.ThreadPoolExecutor(1)
                  if prefetch > 0 else None)
    self._pending = {}

  # -- state ----------------------------------------------------------------
  def get_state(self) -> dict:
    return {"next_batch": int(self.next_batch), "seed": int(self.seed)}

  def set_state(self, state: dict) -> None:
    if int(state.get("seed", self.seed)) != self.seed:
      raise ValueError(f"data state was saved with seed {state['seed']}, "
                       f"this pipeline has seed {self.seed}")
    self.next_batch = int(state["next_batch"])
    self._pending.clear()

  # -- pure batch function -------------------------------------------------
  def _record(self, i: int):
    n = len(self.source)
    epoch, pos = divmod(i, n)
    if self._perm[0] != epoch:
      self._perm = (epoch,
                    np.random.default_rng([self.seed, epoch]).permutation(n))
    rec = int(self._perm[1][pos])
    item = self.source[rec]
    z = np.asarray(item["latents"], np.float32)
    if z.shape[0] < self.window and self.left_pad_short:
      z = np.pad(z, [(self.window - z.shape[0], 0), (0, 0)])
    if z.shape[0] < self.window:
      raise ValueError(f"record {rec} has {z.shape[0]} frames, fewer than "
                       f"the window {self.window}")
    off = np.random.default_rng([self.seed, i, 1]).integers(
        0, z.shape[0] - self.window + 1)
    caption = item.get("caption", "")
    if isinstance(caption, bytes):
      caption = caption.decode("utf-8")
    if not self.controls:
      return rec, z[off:off + self.window], str(caption)
    return (rec, z[off:off + self.window], str(caption),
            self._controls(item, rec, n_short=self.window - len(
                item["latents"]), off=off))

  def _controls(self, item, rec: int, n_short: int, off: int) -> dict:
    """Window crops of the record's controls (absent where it has none)."""
    from lmdm_jax.model.control_inputs import PARTNER, pack
    out = {}
    for name, dim in self.controls.items():
      if f"control_{name}" in item:
        a = np.asarray(item[f"control_{name}"], np.float32)
      elif name == PARTNER and "partner_latents" in item:
        a = pack(np.asarray(item["partner_latents"], np.float32))
      else:
        out[name] = np.zeros((self.window, dim + 1), np.float32)
        continue
      if a.ndim != 2 or a.shape[1] != dim + 1 or (
          a.shape[0] != len(item["latents"])):
        raise ValueError(f"record {rec}: control {name!r} has shape "
                         f"{a.shape}; expected ({len(item['latents'])}, "
                         f"{dim + 1}) [latent frames, dim + 1]")
      if n_short > 0 and self.left_pad_short:
        a = np.pad(a, [(n_short, 0), (0, 0)])
      out[name] = a[off:off + self.window]
    return out

  def batch(self, b: int) -> dict:
    """Rows of global batch b that belong to this process."""
    start = b * self.global_batch + self.first
    rows = [self._record(start + j) for j in range(self.local)]
    recs, wins, caps = (list(r) for r in zip(*(row[:3] for row in rows)))
    n = self.local
    if self.text_encoder is not None:
      cross = np.asarray(self.text_encoder(list(caps)), np.float32)
      if cross.shape != (n,) + self.cond_shape:
        raise ValueError(f"text encoder gave {cross.shape}, the model "
                         f"takes {(n,) + self.cond_shape}")
    else:
      cross = np.zeros((n,) + self.cond_shape, np.float32)
    glob = None
    if hasattr(self.text_encoder, "global_cond"):
      glob = self.text_encoder.global_cond(n)
    if glob is None:
      glob = np.zeros((n, self.global_dim), np.float32)
    elif glob.shape != (n, self.global_dim):
      raise ValueError(f"global conditioning has shape {glob.shape}, the "
                       f"model takes {(n, self.global_dim)}")
    out = {"latents": np.stack(wins),
           "cross_tokens": cross,
           "global_cond": np.asarray(glob, np.float32),
           "index": np.asarray(recs, np.int64)}
    for name in self.controls:
      out[f"control_{name}"] = np.stack([row[3][name] for row in rows])
    return out

  # -- iteration -----------------------------------------------------------
  def __iter__(self):
    return self

  def __next__(self) -> dict:
    b = self.next_batch
    if self._pool is None:
      out = self.batch(b)
    else:
      for k in range(b, b + self.prefetch + 1):
        if k not in self._pending:
          self._pending[k] = self._pool.submit(self.batch, k)
      out = self._pending.pop(b).result()
      for k in [k for k in self._pending if k < b]:
        del self._pending[k]
    self.next_batch = b + 1
    return out

  def close(self):
    if self._pool is not None:
      self._pool.shutdown(wait=False, cancel_futures=True)


def make_pipeline(cfg, process_index: int = 0, process_count: int = 1,
                  source=None) -> WindowPipeline:
  """The pipeline a finetune config asks for."""
  d = cfg.data
  window = int(d.get("window", 0) or 0) or (cfg.geometry.context +
                                            cfg.geometry.block)
  if source is None:
    if d.source == "synthetic":
      source = SyntheticSource(64, window * 2, cfg.model.io_channels,
                               seed=int(d.shuffle_seed),
                               controls=dict(cfg.model.get("controls", {})
                                             or {}))
    elif d.source == "tfds":
      if not d.dir:
        raise ValueError("data.source 'tfds' needs --config.data.dir "
                         "(the --out of `lmdm data build`)")
      check_init_codec(cfg)
      source = tfds_source(d.dir, d.name)
    else:
      raise ValueError(f"data.source must be 'tfds' or 'synthetic', got "
                       f"{d.source!r}")
  return WindowPipeline(
      source, window, int(cfg.train.batch_size), seed=int(d.shuffle_seed),
      process_index=process_index, process_count=process_count,
      cond_shape=(int(cfg.cond_tokens), max(int(cfg.model.cond_token_dim), 1)),
      global_dim=max(int(cfg.model.global_cond_dim), 1),
      prefetch=int(d.prefetch), text_encoder=text_encoder_for(cfg),
      left_pad_short=bool(d.get("left_pad_short", False)),
      controls=dict(cfg.model.get("controls", {}) or {}))


def check_init_codec(cfg) -> None:
  """A ValueError before anything loads when the run starts from a model
  package (cfg.init.params) whose codec (name and arguments) is not the
  one the dataset at cfg.data.dir was built with (for a demo-style run,
  whose export names config.codec: when config.codec is not), or from
  scratch with a config.codec of the build's codec but other arguments
  (`reading.check_codec`)."""
  import os
  from lmdm_jax import package
  from lmdm_jax.data import reading
  init = str(cfg.get("init", {}).get("params", "") or "")
  codec = cfg.get("codec", None)
  if not init or not os.path.isfile(os.path.join(init, package.MANIFEST)):
    # A from-scratch run: config.codec only names what the exported
    # package will say (finetune.py keeps "mel" whatever the data), so
    # only its arguments are checked, and only against a build by the
    # same codec (e.g. a semitone layout option).
    if codec and reading.built_codec(cfg.data.dir, cfg.data.name) == str(
        codec["name"]):
      reading.check_codec(cfg.data.dir, cfg.data.name, str(codec["name"]),
                           "config.codec",
                           dict(codec.get("kwargs", {}) or {}))
    return
  if codec and package.base_package(cfg) is None:
    # A demo-style run from a package (hashed words, a weights-free codec:
    # e.g. the demo model moved to another semitone layout, or a sketch
    # model from the demo): its export names config.codec, not the init
    # package's, so the data must be config.codec's.
    reading.check_codec(cfg.data.dir, cfg.data.name, str(codec["name"]),
                         "config.codec (a demo-style run's export names it, "
                         "not the init package's)",
                         dict(codec.get("kwargs", {}) or {}))
    return
  codec = package.read_manifest(init)["codec"]
  reading.check_codec(cfg.data.dir, cfg.data.name, codec.get("name", ""),
                       f"the init package {init}",
                       dict(codec.get("kwargs", {}) or {}))


def text_encoder_for(cfg):
  """The host text encoder a config names (cfg.text.encoder), or None."""
  name = cfg.get("text", {}).get("encoder", "") if hasattr(cfg, "get") \
      else ""
  if not name or name == "none":
    return None
  if name == "hashed_words":
    from lmdm_jax.text.hashed import HashedWords
    return HashedWords(int(cfg.model.cond_token_dim), int(cfg.cond_tokens))
  if name == "t5":
    return package_conditioning(cfg)
  raise ValueError(f"unknown text encoder {name!r}; known: 'hashed_words', "
                   f"'t5', 'none'")


def package_conditioning(cfg):
  """cfg.text.encoder "t5": the init package's T5 + number conditioners as
  a batch encoder (`BatchConditioning`), checked against the model being
  trained (cfg.model, cfg.cond_tokens) before anything else loads, so a
  mismatch is one line naming the part (PackageError)."""
  import os
  from lmdm_jax import package
  path = str(cfg.get("init", {}).get("params", "") or "")
  if not path or not os.path.isfile(os.path.join(path, package.MANIFEST)):
    raise ValueError(
        f"text.encoder 't5' conditions with a package's T5 and number "
        f"conditioners: --config.init.params must be a package (lmdm fetch "
        f"/ lmdm package / lmdm export), got {path!r}")
  pkg = package.load(path, dit_params=False)
  if pkg.text.get("encoder") != "t5":
    raise package.PackageError(
        path, "text encoder", f"{pkg.text.get('encoder')!r}, not 't5' "
        f"(text.encoder 't5' needs a package with a T5)")
  width, dim = int(pkg.text["config"]["d_model"]), int(
      cfg.model.cond_token_dim)
  if width != dim:
    raise package.PackageError(
        path, "text encoder (t5)", f"width {width} does not match the "
        f"trained DiT's cond_token_dim {dim} (config model; "
        f"--config.init.model=package takes the package's)")
  if int(pkg.cond_tokens) != int(cfg.cond_tokens):
    raise package.PackageError(
        path, "conditioning", f"{pkg.cond_tokens} cross tokens (T5 "
        f"max_length + number tokens), the config says cond_tokens "
        f"{cfg.cond_tokens}")
  glob = sum(int(s["config"]["output_dim"])
             for s in pkg.conditioning.get("conditioners", [])
             if s["id"] in pkg.conditioning.get("global_ids", []))
  want = int(cfg.model.global_cond_dim)
  if want and glob != want:
    raise package.PackageError(
        path, "conditioning", f"global vector width {glob} does not match "
        f"the trained DiT's global_cond_dim {want}")
  return pkg.batch_conditioning()
