"""The model package: one directory format for every model, and its loader.

A package holds everything needed to play (and fine-tune from) a model:

  model.json          the manifest (below), written last
  params.npz          flat float32 "dit/..." arrays (EMA when kept)
  text/params.npz     T5 encoder weights          (text encoder "t5" only)
  text/spiece.model   its sentencepiece model     (text encoder "t5" only)
  codec/params.npz    Oobleck "encoder/..", "decoder/.." (codec "oobleck")
  conditioners.npz    number conditioners "<id>/..."   (when there are any)

model.json (format "lmdm_jax.model/2"; "/1", the first export format, is
read too: it is /2 without "conditioning"):
  dit, geometry, cond_tokens, frame_rate   the DiT and its stream geometry
  text     {"encoder": "hashed_words", "dim", "max_tokens", "vocabulary"}
           or {"encoder": "t5", "id", "max_length", "config": T5Config}
           ("" or "none": trained without captions; plays unconditioned)
  codec    {"name": "mel", "kwargs": {}} or {"name": "oobleck",
           "config": OobleckConfig, "sample_rate"}
  conditioning  {"conditioners": [{"id", "type": "number", "config"}],
           "cross_ids", "global_ids", "stream_inputs": {id: value}}:
           SAO's MultiConditioner. Cross-attention tokens are the
           cross_ids' embeddings concatenated along tokens (the text id's
           [max_length, D], a number's [1, D]); the global vector is the
           global_ids' first tokens concatenated along channels (lmdm_jax/
           conditioners/base.py, as stable-audio-tools assembles them).
           stream_inputs are the number inputs a stream feeds for every
           block: seconds_total = the training window's length (see
           lmdm_jax/conditioners/prompt.py: `stream_seconds_total`).
  defaults {"steps", "cfg_scale", "sampler"}, optionally
           "output_gain_db" (lmdm_jax/live/output_stage.py),
           "block_level_db" and "block_level_db_by_cfg"
           (lmdm_jax/live/block_level.py); meta:
           provenance.

Arrays are npz (numpy alone reads them), never pickle: `np.load` is
called with allow_pickle=False. Loading a package imports nothing from
lmdm_jax.convert: writing one from converted checkpoints is
lmdm_jax/convert/assemble.py's job, `lmdm export`'s from a training run.

Writes are atomic (`write`): everything goes into a temporary sibling
directory, then moves into place with model.json last, so an interrupted or
failed write never leaves a directory that loads as a package.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from typing import Any, Dict, Mapping, Optional

import numpy as np

from lmdm_jax.flat_tree import flatten, unflatten  # noqa: F401  (package.flatten)

FORMAT = "lmdm_jax.model/2"
FORMAT_V1 = "lmdm_jax.model/1"
MANIFEST = "model.json"
DIT_PARAMS = "params.npz"
TEXT_PARAMS = "text/params.npz"
TEXT_TOKENIZER = "text/spiece.model"
CODEC_PARAMS = "codec/params.npz"
COND_PARAMS = "conditioners.npz"
TEXT_ID = "prompt"


class PackageError(ValueError):
  """A package (or the parts it is assembled from) is incomplete or
  inconsistent. The message is one line that names the part."""

  def __init__(self, where: str, part: str, problem: str):
    self.part = part
    super().__init__(f"{where}: {part}: {problem}")


# -- flat npz trees (lmdm_jax/flat_tree.py) -------------------------------------
def read_npz(path: str, where: str, part: str, as_jax: bool = True):
  """A flat npz -> nested tree (jnp arrays unless as_jax=False)."""
  if not os.path.isfile(path):
    raise PackageError(where, part, f"{os.path.relpath(path, where)} is "
                       f"missing")
  with np.load(path, allow_pickle=False) as z:
    flat = {k: z[k] for k in z.files}
  if as_jax:
    import jax.numpy as jnp
    flat = {k: jnp.asarray(v) for k, v in flat.items()}
  return unflatten(flat)


# -- manifest ------------------------------------------------------------------
def upgrade(doc: Dict[str, Any]) -> Dict[str, Any]:
  """A /1 manifest as /2 (its text tokens are the whole cross input)."""
  doc = dict(doc)
  if doc.get("format") == FORMAT_V1:
    doc["format"] = FORMAT
    doc.setdefault("conditioning", {})
  if doc.get("format") != FORMAT:
    raise ValueError(f"format {doc.get('format')!r}; this version reads "
                     f"{FORMAT!r} and {FORMAT_V1!r}")
  c = dict(doc.get("conditioning") or {})
  c.setdefault("conditioners", [])
  c.setdefault("cross_ids", [doc["text"].get("id", TEXT_ID)])
  c.setdefault("global_ids", [])
  c.setdefault("stream_inputs", {})
  doc["conditioning"] = c
  return doc


def _text_width(text: Mapping[str, Any]) -> int:
  if text.get("encoder") == "t5":
    return int(text["config"]["d_model"])
  return int(text.get("dim", 0))


def _text_tokens(text: Mapping[str, Any]) -> int:
  if text.get("encoder") == "t5":
    return int(text["max_length"])
  return int(text.get("max_tokens", 0))


def validate(doc: Mapping[str, Any], where: str = "package",
             sources: Optional[Mapping[str, str]] = None) -> None:
  """Checks that the parts of an (upgraded) manifest fit the DiT.

  Raises PackageError naming the first part that does not fit: the text
  encoder's width vs the DiT's cond_token_dim, the codec's latent size vs
  its io_channels, conditioner widths, the token count, the global width.
  `sources`: part -> where it came from, added to the part's name.
  """
  src = dict(sources or {})

  def part(name, key):
    return f"{name} ({src[key]})" if key in src else name

  from lmdm_jax.model.config import DiTConfig, Geometry
  for name, cls, key in (("DiT config", DiTConfig, "dit"),
                         ("geometry", Geometry, "geometry")):
    try:
      cls.from_dict(doc[key])
    except (ValueError, TypeError, KeyError) as e:
      raise PackageError(where, name, str(e)) from None
  dit = doc["dit"]
  text, codec, c = doc["text"], doc["codec"], doc["conditioning"]
  enc = text.get("encoder")
  if enc not in ("hashed_words", "t5", "", "none"):
    raise PackageError(where, part("text encoder", "text"),
                       f"unknown encoder {enc!r}; known: hashed_words, t5 "
                       f"(or none)")
  width, cond_dim = _text_width(text), int(dit["cond_token_dim"])
  if enc in ("hashed_words", "t5") and width != cond_dim:
    raise PackageError(
        where, part(f"text encoder ({enc})", "text"),
        f"width {width} does not match the DiT's cond_token_dim {cond_dim}")
  if codec.get("name") == "oobleck":
    latent = int(codec["config"]["latent_dim"])
    if latent != int(dit["io_channels"]):
      raise PackageError(
          where, part("codec (oobleck VAE)", "codec"),
          f"latent size {latent} does not match the DiT's io_channels "
          f"{dit['io_channels']}")
  specs = {s["id"]: s for s in c["conditioners"]}
  text_id = text.get("id", TEXT_ID)
  tokens = 0
  for i in c["cross_ids"]:
    if i == text_id:
      tokens += _text_tokens(text) if enc in ("hashed_words", "t5") else \
          int(doc["cond_tokens"]) - (len(c["cross_ids"]) - 1)
      continue
    if i not in specs:
      raise PackageError(where, part("conditioning", "dit"),
                         f"cross-attention id {i!r} has no conditioner")
    if specs[i]["type"] != "number":
      raise PackageError(where, part(f"conditioner {i!r}", "dit"),
                         f"type {specs[i]['type']!r} is not supported "
                         f"(number conditioners only)")
    out = int(specs[i]["config"]["output_dim"])
    if out != cond_dim:
      raise PackageError(where, part(f"conditioner {i!r}", "dit"),
                         f"width {out} does not match the DiT's "
                         f"cond_token_dim {cond_dim}")
    if i not in c["stream_inputs"]:
      raise PackageError(where, part(f"conditioner {i!r}", "dit"),
                         "no stream input (conditioning.stream_inputs)")
    tokens += 1
  if tokens != int(doc["cond_tokens"]):
    raise PackageError(where, "conditioning",
                       f"cross tokens add up to {tokens}, the manifest says "
                       f"cond_tokens {doc['cond_tokens']}")
  glob = 0
  for i in c["global_ids"]:
    if i not in specs:
      raise PackageError(where, part("conditioning", "dit"),
                         f"global id {i!r} has no conditioner")
    glob += int(specs[i]["config"]["output_dim"])
  if glob and glob != int(dit["global_cond_dim"]):
    raise PackageError(where, part("conditioning", "dit"),
                       f"global vector width {glob} does not match the "
                       f"DiT's global_cond_dim {dit['global_cond_dim']}")


def required_files(doc: Mapping[str, Any]) -> Dict[str, str]:
  """relative path -> the part it belongs to."""
  out = {DIT_PARAMS: "DiT"}
  if doc["text"].get("encoder") == "t5":
    out[TEXT_PARAMS] = "text encoder (t5)"
    out[TEXT_TOKENIZER] = "text encoder (t5) tokenizer"
  if doc["codec"].get("name") == "oobleck":
    out[CODEC_PARAMS] = "codec (oobleck VAE)"
  if doc["conditioning"]["conditioners"]:
    out[COND_PARAMS] = "conditioners"
  return out


# -- writing -------------------------------------------------------------------
def write(out: str, doc: Dict[str, Any],
          arrays: Mapping[str, Mapping[str, np.ndarray]],
          files: Optional[Mapping[str, str]] = None,
          sources: Optional[Mapping[str, str]] = None) -> str:
  """Writes a package atomically.

  doc: the manifest (format is set here). arrays: relative path -> flat
  {name: array} (saved as npz). files: relative path -> a file to copy.
  The manifest is validated and every required part checked present
  before anything is written; the new package replaces what was at `out`
  (other files in an existing `out` directory are kept).
  """
  doc = upgrade(dict(doc, format=FORMAT))
  validate(doc, out, sources)
  have = set(arrays) | set(files or {})
  for rel, what in required_files(doc).items():
    if rel not in have:
      raise PackageError(out, what, f"{rel} is not among the parts given")
  parent = os.path.dirname(os.path.abspath(out))
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.tmp-", dir=parent)
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(tmp, 0o777 & ~umask)       # mkdtemp's 0700 is not a package's
  try:
    for rel, flat in arrays.items():
      os.makedirs(os.path.dirname(os.path.join(tmp, rel)), exist_ok=True)
      np.savez(os.path.join(tmp, rel), **{k: np.asarray(v, np.float32)
                                          for k, v in flat.items()})
    for rel, src in (files or {}).items():
      os.makedirs(os.path.dirname(os.path.join(tmp, rel)), exist_ok=True)
      shutil.copyfile(src, os.path.join(tmp, rel))
    with open(os.path.join(tmp, MANIFEST), "w") as f:
      json.dump(doc, f, indent=1, sort_keys=True)
    _move_into_place(tmp, out)
  finally:
    if os.path.isdir(tmp):
      shutil.rmtree(tmp)
  return out


def _move_into_place(tmp: str, out: str) -> None:
  if not os.path.exists(out):
    os.replace(tmp, out)                # atomic
    return
  # An existing directory: invalidate it first (no model.json), move the
  # parts in, the manifest last.
  manifest = os.path.join(out, MANIFEST)
  if os.path.exists(manifest):
    os.remove(manifest)
  for name in sorted(os.listdir(tmp)):
    if name == MANIFEST:
      continue
    dst = os.path.join(out, name)
    if os.path.isdir(dst) and not os.path.islink(dst):
      shutil.rmtree(dst)
    os.replace(os.path.join(tmp, name), dst)
  os.replace(os.path.join(tmp, MANIFEST), manifest)


def save(out: str, *, dit_params, cfg, text: dict, codec: dict,
         defaults: dict, meta: dict, base: Optional[str] = None) -> str:
  """A package from a finetune-style config and DiT params (`lmdm export`).

  base: a package whose text encoder, codec and conditioners the new one
  keeps (a model fine-tuned from a converted SAO package); without it the
  text spec and codec given here (hashed words, mel) are used.
  """
  import flax
  params = flax.core.unfreeze(dit_params) if hasattr(
      flax.core, "unfreeze") else dit_params
  doc = {"dit": cfg.model.to_dict(), "geometry": cfg.geometry.to_dict(),
         "cond_tokens": int(cfg.cond_tokens),
         "frame_rate": float(cfg.frame_rate), "text": text, "codec": codec,
         "defaults": defaults, "meta": meta}
  arrays = {DIT_PARAMS: flatten({"dit": params})}
  files = {}
  if base is not None:
    b = read_manifest(base)
    doc.update(text=b["text"], codec=b["codec"],
               conditioning=b["conditioning"])
    for rel in required_files(b):
      if rel != DIT_PARAMS:
        files[rel] = os.path.join(base, rel)
    meta = dict(meta, base=os.path.abspath(base))
    doc["meta"] = meta
  return write(out, doc, arrays, files)


# -- reading -------------------------------------------------------------------
def read_manifest(path: str) -> Dict[str, Any]:
  """The upgraded, validated manifest of the package at `path`, with every
  required file checked present (no arrays are read)."""
  manifest = os.path.join(path, MANIFEST)
  if not os.path.isfile(manifest):
    raise PackageError(path, "manifest", f"{MANIFEST} is missing (not a "
                       f"package, or an interrupted write)")
  with open(manifest) as f:
    try:
      doc = upgrade(json.load(f))
    except (ValueError, KeyError) as e:
      raise PackageError(path, "manifest", str(e)) from None
  validate(doc, path)
  for rel, what in required_files(doc).items():
    if not os.path.isfile(os.path.join(path, rel)):
      raise PackageError(path, what, f"{rel} is missing")
  return doc


@dataclasses.dataclass
class Pretrained:
  """A loaded package. params: {"dit": tree of jnp arrays}; the text
  encoder, codec and conditioners load on first use."""
  dit: Any                    # DiTConfig
  geometry: Any               # Geometry
  cond_tokens: int
  params: Dict[str, Any]
  text: Dict[str, Any]
  codec: Dict[str, Any]
  defaults: Dict[str, Any]
  meta: Dict[str, Any]
  path: str
  conditioning: Dict[str, Any] = dataclasses.field(default_factory=dict)
  frame_rate: float = 0.0
  _cache: Dict[str, Any] = dataclasses.field(default_factory=dict,
                                             repr=False)

  def _file(self, rel: str) -> str:
    return os.path.join(self.path, rel)

  def text_encoder(self):
    """Host callable: `encode_one(text) -> [cond_tokens, cond_token_dim]`,
    the DiT's whole cross-attention input for a prompt (text tokens and
    the number conditioners' tokens, in cross_ids order), computed once
    per prompt; `unknown_words(text)` where the encoder knows its
    vocabulary. A model without conditioners gets its text encoder
    itself."""
    if "text" not in self._cache:
      text = self._plain_text_encoder()
      c = self.conditioning
      if c.get("conditioners") or c.get("cross_ids", [TEXT_ID]) != [
          self.text.get("id", TEXT_ID)]:
        from lmdm_jax.conditioners.prompt import CrossTokens
        text = CrossTokens(text, self.text.get("id", TEXT_ID),
                           c["cross_ids"], self._number_embeddings())
      self._cache["text"] = text
    return self._cache["text"]

  def batch_conditioning(self):
    """The training pipeline's conditioning: captions -> cross tokens
    [B, cond_tokens, cond_token_dim] and `global_cond(n)` -> [n, G], the
    T5 batched, assembled as `text_encoder()` assembles one prompt
    (lmdm_jax/conditioners/prompt.py: BatchConditioning)."""
    from lmdm_jax.conditioners.prompt import BatchConditioning
    c = self.conditioning
    ids = c.get("global_ids", []) if self.dit.global_cond_dim else []
    return BatchConditioning(self._plain_text_encoder(),
                             self.text.get("id", TEXT_ID),
                             c.get("cross_ids", [TEXT_ID]), ids,
                             self._number_embeddings())

  def _plain_text_encoder(self):
    name = self.text.get("encoder", "")
    if name == "hashed_words":
      from lmdm_jax.text.hashed import HashedWords
      return HashedWords(int(self.text["dim"]), int(self.text["max_tokens"]),
                         vocabulary=self.text.get("vocabulary", ()))
    if name == "t5":
      from lmdm_jax.conditioners.prompt import T5Prompts
      return T5Prompts(read_npz(self._file(TEXT_PARAMS), self.path,
                                "text encoder (t5)"),
                       self._file(TEXT_TOKENIZER), self.text["config"],
                       int(self.text["max_length"]))
    raise PackageError(self.path, "text encoder", f"none in this package "
                       f"(encoder {name!r}: trained without captions)")

  def _number_embeddings(self) -> Dict[str, np.ndarray]:
    """id -> [D] embedding of the stream input of each number conditioner
    (constant for a stream: computed once)."""
    if "numbers" not in self._cache:
      from lmdm_jax.conditioners.prompt import number_embeddings
      c = self.conditioning
      params = (read_npz(self._file(COND_PARAMS), self.path, "conditioners")
                if c.get("conditioners") else {})
      missing = [s["id"] for s in c.get("conditioners", [])
                 if s["id"] not in params]
      if missing:
        raise PackageError(self.path, f"conditioner {missing[0]!r}",
                           f"no weights in {COND_PARAMS}")
      self._cache["numbers"] = number_embeddings(
          c.get("conditioners", []), params, c.get("stream_inputs", {}))
    return self._cache["numbers"]

  def global_cond(self) -> Optional[np.ndarray]:
    """[global_cond_dim] for the stream (SAO: the seconds_total
    embedding), or None for a model without global conditioning."""
    ids = self.conditioning.get("global_ids", [])
    if not ids or not self.dit.global_cond_dim:
      return None
    emb = self._number_embeddings()
    return np.concatenate([emb[i] for i in ids]).astype(np.float32)

  def live_session(self, steps: Optional[int] = None,
                   cfg_scale: Optional[float] = None,
                   sampler: Optional[str] = None, batch: int = 1, **kwargs):
    """A `LiveSession` on this package: its DiT and geometry, prompts
    through `text_encoder()` (T5 once per prompt), its global conditioning
    (seconds_total) and its generation defaults; kwargs go to LiveSession
    (steps_options, seed, drop_frames, context, progress). Play it with
    `Player(session, pkg.make_codec())`."""
    from lmdm_jax.live.session import LiveSession
    from lmdm_jax.streaming.state import StreamSpec
    d = self.defaults
    steps = int(steps if steps is not None else d.get("steps", 8))
    cfg_scale = float(cfg_scale if cfg_scale is not None
                      else d.get("cfg_scale", 1.0))
    spec = StreamSpec(self.dit, self.geometry, batch=batch,
                      cond_tokens=self.cond_tokens, steps=steps,
                      sampler=sampler or d.get("sampler", "pingpong"),
                      cfg=cfg_scale != 1.0)
    session = LiveSession(self.params["dit"], spec,
                          self.text_encoder().encode_one,
                          global_cond=self.global_cond(), **kwargs)
    session.set_cfg(cfg_scale)
    return session

  def make_codec(self):
    from lmdm_jax.codecs import get_codec
    if self.codec["name"] == "oobleck":
      if "codec" not in self._cache:
        from lmdm_jax.codecs.oobleck_model import OobleckConfig
        cfg = {k: tuple(v) if isinstance(v, list) else v
               for k, v in self.codec["config"].items()}
        params = read_npz(self._file(CODEC_PARAMS), self.path,
                          "codec (oobleck VAE)")
        self._cache["codec"] = get_codec(
            "oobleck", config=OobleckConfig(**cfg), params=params,
            sample_rate=int(self.codec.get("sample_rate", 44100)))
      return self._cache["codec"]
    return get_codec(self.codec["name"], **self.codec.get("kwargs", {}))


def load(path: str, dit_params: bool = True) -> Pretrained:
  """The package at `path` (DiT params read now, the rest on first use;
  every part's presence and width checked now). dit_params=False: params
  is {} (the training pipeline needs only the text encoder and
  conditioners; the trainer reads the DiT itself)."""
  import jax.numpy as jnp
  from lmdm_jax.model.config import DiTConfig, Geometry
  if not os.path.isdir(path):
    raise FileNotFoundError(f"model directory {path!r} does not exist")
  doc = read_manifest(path)
  params = {}
  if dit_params:
    with np.load(os.path.join(path, DIT_PARAMS), allow_pickle=False) as z:
      params = unflatten({k: jnp.asarray(z[k]) for k in z.files})
    if "dit" not in params:
      raise PackageError(path, "DiT", f"{DIT_PARAMS} holds no dit/ arrays")
  return Pretrained(
      dit=DiTConfig.from_dict(doc["dit"]),
      geometry=Geometry.from_dict(doc["geometry"]),
      cond_tokens=int(doc["cond_tokens"]), params=params, text=doc["text"],
      codec=doc["codec"], defaults=doc.get("defaults", {}),
      meta=doc.get("meta", {}), path=path,
      conditioning=doc["conditioning"],
      frame_rate=float(doc.get("frame_rate", 0.0)))


# Codecs with no weights: a package on one of them needs no base package.
WEIGHTS_FREE_CODECS = ("mel", "semitone", "pool")


def base_package(cfg, base: Optional[str] = None) -> Optional[str]:
  """The package whose text encoder, codec and conditioners an export
  keeps: `base` when given, else the run's init (`init.params`) when it is
  a package and the run is not a demo-style one (hashed-word captions with
  a weights-free codec: mel, semitone, pool), i.e. a model fine-tuned from
  `lmdm fetch` / `lmdm package` output. A demo-style run writes its own
  parts, e.g. a sketch model fine-tuned from the shipped demo package: its
  vocabulary comes from its own data and its stream inputs from its
  config, not from the demo's."""
  if base:
    return base
  init = str(cfg.get("init", {}).get("params", "") or "")
  if not init or not os.path.isfile(os.path.join(init, "model.json")):
    return None
  text = str(cfg.get("text", {}).get("encoder", ""))
  codec = str(cfg.get("codec", {}).get("name", "mel"))
  demo_style = text == "hashed_words" and codec in WEIGHTS_FREE_CODECS
  return None if demo_style else init
