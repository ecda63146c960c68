"""`lmdm fetch`: download published weights and write one model package.

  lmdm fetch sao-small --out sao_small_pkg/ [--token T] [--cache-dir D]

The one module of lmdm_jax that reaches the network, through
`huggingface_hub` (the `fetch` extra: pip install "lmdm_jax[fetch]").

sao-small: stabilityai/stable-audio-open-small (model.safetensors +
model_config.json: the DiT, the seconds_total conditioner and the Oobleck
VAE) and google-t5/t5-base (config.json, model.safetensors, spiece.model).
Each is converted strictly (lmdm_jax/convert: every tensor used, every
shape checked) and the parts are assembled into one package
(lmdm_jax/convert/assemble.py), written atomically.

- Downloads go to the hub's cache (HF_HUB_CACHE / --cache-dir) through the
  hub's own client: an interrupted download resumes from its `.incomplete`
  file on the next run, and files already cached are not downloaded again.
- Re-running: when `--out` already holds the package made from the same
  revisions, nothing is converted or written ("up to date").
- Token: --token, else HF_TOKEN, else the hub's stored login
  (`hf auth login`). stabilityai/stable-audio-open-small is gated: accept
  its licence on its model page first; without access the command says so
  in one line and exits 2, writing nothing.
- Offline (HF_HUB_OFFLINE=1 or --offline): only the cache is read.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from typing import Callable, Dict, Optional

MODELS = {
    "sao-small": {
        "dit": ("stabilityai/stable-audio-open-small",
                ("model_config.json", "model.safetensors")),
        "t5": ("google-t5/t5-base",
               ("config.json", "model.safetensors", "spiece.model")),
    },
}


class FetchError(RuntimeError):
  """A download that cannot go on; the message is one line."""


def _truthy(v: Optional[str]) -> bool:
  return str(v or "").strip().lower() in ("1", "true", "yes", "on")


def _download(repo: str, filename: str, *, token, cache_dir, offline,
              endpoint, revision: Optional[str] = None) -> str:
  """One file through the hub's cache -> its local path (one-line errors)."""
  try:
    import huggingface_hub as hub
    from huggingface_hub import errors
  except ImportError:
    raise FetchError("lmdm fetch needs huggingface_hub: pip install "
                     "'lmdm_jax[fetch]'") from None
  page = f"{(endpoint or 'https://huggingface.co').rstrip('/')}/{repo}"
  # The hub reads HF_HUB_OFFLINE once, at import: it refuses the network
  # whatever is passed when it was imported offline.
  offline = offline or bool(getattr(hub.constants, "HF_HUB_OFFLINE", False))
  try:
    return hub.hf_hub_download(repo, filename, revision=revision,
                               cache_dir=cache_dir, token=token,
                               local_files_only=offline, endpoint=endpoint)
  except errors.GatedRepoError:
    raise FetchError(
        f"{repo} is gated and this account has no access: request it at "
        f"{page} (log in and accept the licence), then pass --token, set "
        f"HF_TOKEN or run `hf auth login`") from None
  except errors.RepositoryNotFoundError:
    raise FetchError(
        f"{repo}: not found or not accessible with this token (401/404); "
        f"check the name, request access at {page}, and log in (--token, "
        f"HF_TOKEN or `hf auth login`)") from None
  except errors.LocalEntryNotFoundError:
    if offline:
      raise FetchError(f"{repo}/{filename} is not in the hub cache and the "
                       f"hub is offline (HF_HUB_OFFLINE / --offline)") from None
    raise FetchError(f"{repo}/{filename}: cannot reach the hub ({page}); "
                     f"check the network, or run with --offline on a "
                     f"filled cache") from None
  except errors.EntryNotFoundError:
    raise FetchError(f"{repo} has no file {filename}") from None
  except errors.HfHubHTTPError as e:
    status = getattr(getattr(e, "response", None), "status_code", None)
    if status in (401, 403):
      raise FetchError(
          f"{repo}: access denied (HTTP {status}); request access at {page} "
          f"and log in (--token, HF_TOKEN or `hf auth login`)") from None
    raise FetchError(f"{repo}/{filename}: {str(e).splitlines()[0]}") from None


def _revision_of(path: str) -> str:
  """The commit a hub-cache file belongs to (its snapshots/<commit>/ dir)."""
  parts = os.path.normpath(path).split(os.sep)
  if "snapshots" in parts:
    return parts[parts.index("snapshots") + 1]
  return "local"


def _up_to_date(out: str, sources: Dict[str, str]) -> bool:
  try:
    with open(os.path.join(out, "model.json")) as f:
      meta = json.load(f).get("meta", {})
  except (OSError, ValueError):
    return False
  if meta.get("fetched") != sources:
    return False
  from lmdm_jax import package
  try:
    package.read_manifest(out)
  except package.PackageError:
    return False
  return True


def fetch(name: str, out: str, token: Optional[str] = None,
          cache_dir: Optional[str] = None, offline: Optional[bool] = None,
          endpoint: Optional[str] = None,
          log: Callable[[str], None] = print) -> dict:
  """Downloads, converts and packages `name` into `out` -> a summary."""
  if name not in MODELS:
    raise FetchError(f"unknown model {name!r}; known: {sorted(MODELS)}")
  if offline is None:
    offline = _truthy(os.environ.get("HF_HUB_OFFLINE"))
  endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
  token = token or None             # None: HF_TOKEN or the stored login
  paths: Dict[str, Dict[str, str]] = {}
  for part, (repo, files) in MODELS[name].items():
    paths[part] = {}
    for fn in files:
      log(f"[fetch] {repo}/{fn}")
      paths[part][fn] = _download(repo, fn, token=token, cache_dir=cache_dir,
                                  offline=offline, endpoint=endpoint)
  sources = {MODELS[name][p][0]: _revision_of(next(iter(f.values())))
             for p, f in paths.items()}
  if _up_to_date(out, sources):
    log(f"[fetch] {out} is up to date ({sources})")
    return {"out": out, "up_to_date": True, "sources": sources}
  from lmdm_jax.convert.assemble import assemble
  from lmdm_jax.convert.oobleck import convert_oobleck
  from lmdm_jax.convert.sao import convert_sao
  from lmdm_jax.convert.t5 import convert_t5
  parent = os.path.dirname(os.path.abspath(out))
  os.makedirs(parent, exist_ok=True)
  work = tempfile.mkdtemp(prefix=f".{os.path.basename(out)}.parts-",
                          dir=parent)
  try:
    ckpt = paths["dit"]["model.safetensors"]
    cfg = paths["dit"]["model_config.json"]
    log("[fetch] converting the DiT and seconds_total conditioner")
    convert_sao(ckpt, cfg, os.path.join(work, "dit"))
    log("[fetch] converting the Oobleck VAE")
    convert_oobleck(ckpt, cfg, os.path.join(work, "vae"))
    log("[fetch] converting T5")
    t5_dir = os.path.dirname(paths["t5"]["model.safetensors"])
    convert_t5(t5_dir, os.path.join(work, "t5"))
    log(f"[fetch] writing the package {out}")
    summary = assemble(os.path.join(work, "dit"), os.path.join(work, "t5"),
                       os.path.join(work, "vae"), out,
                       meta={"fetched": sources, "model": name})
  finally:
    shutil.rmtree(work, ignore_errors=True)
  summary.update(up_to_date=False, sources=sources)
  return summary


def _cli(args) -> int:
  from lmdm_jax.convert.state_dict import ConversionError
  from lmdm_jax.package import PackageError
  log = (lambda s: print(s, file=sys.stderr, flush=True))
  try:
    out = fetch(args.model, args.out, token=args.token,
                cache_dir=args.cache_dir,
                offline=True if args.offline else None, log=log)
  except (FetchError, PackageError, ConversionError, ValueError,
          FileNotFoundError) as e:
    msg = str(e)
    if isinstance(e, ConversionError):
      msg = "converting the download failed: " + " ".join(msg.split())
    print(f"lmdm fetch: error: {msg}", file=sys.stderr)
    return 2
  print(json.dumps(out, indent=2))
  return 0


def add_arguments(p) -> None:
  """`lmdm fetch`'s arguments."""
  p.add_argument("model", choices=sorted(MODELS))
  p.add_argument("--out", required=True, help="the package directory")
  p.add_argument("--token", default=None,
                 help="hub token (default: HF_TOKEN or the stored login)")
  p.add_argument("--cache-dir", default=None,
                 help="hub cache (default: HF_HUB_CACHE, "
                 "~/.cache/huggingface/hub)")
  p.add_argument("--offline", action="store_true",
                 help="read the hub cache only (also HF_HUB_OFFLINE=1)")
