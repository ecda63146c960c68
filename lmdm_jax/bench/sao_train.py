"""Stage-1 costs at SAO-Small shape with its own conditioning (random
weights; cost does not depend on them), for docs/training.md:

  t5       T5-base encode of one batch of captions (batch x max_length
           tokens), jitted, as the training pipeline runs it
           (`T5Prompts.encode`: tokenisation on the host, encoder on the
           default device), with its compiled FLOPs
  step     one stage-1 train step at a small batch (configs/finetune.py:bc,
           the real data-parallel step on one device); "step_flops" alone:
           only the FLOPs of the loss + gradient (HLO cost analysis)
  oobleck  `lmdm data build --codec oobleck`'s encode: SAO's VAE on a few
           seconds of audio, whole-file and through the batched windows
           (chunk + 2 x encoder_radius frames, `batch` per call)

Writes one JSON (benchmarks/sao_train_cpu.py). On this CPU the step is the
expensive part: the ratio t5 / step says what placing T5 in the trainer's
pipeline costs against precomputing its tokens (docs/training.md).
"""
from __future__ import annotations

import os
import statistics
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np


def _timed(fn, repeats: int):
  t0 = time.perf_counter()
  jax.block_until_ready(fn())
  first = time.perf_counter() - t0
  times = []
  for _ in range(repeats):
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - t0)
  return first, statistics.median(times)


def _flops(jitted, *args) -> float:
  """XLA's FLOP count of the lowered program (HLO cost analysis, no
  compile: seconds even at SAO-Small)."""
  try:
    cost = jitted.lower(*args).cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    return float(cost.get("flops", 0.0))
  except Exception:  # noqa: BLE001  (a backend without cost analysis)
    return 0.0


def _spm(tmp: str) -> str:
  """A small sentencepiece model (tokenisation cost only; T5-base's
  32k vocabulary is used for the embedding)."""
  import sentencepiece as spm
  words = ("ambient piano drums bass strings choir slow fast warm bright "
           "lofi techno jazz bpm with and at in minor major").split()
  rng = np.random.default_rng(0)
  sents = [" ".join(rng.choice(words, 12)) for _ in range(200)]
  prefix = os.path.join(tmp, "spiece")
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(sents), model_prefix=prefix, vocab_size=40,
      model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1,
      hard_vocab_limit=False, minloglevel=2)
  return prefix + ".model"


def t5_batch(batch: int = 8, tokens: int = 64, repeats: int = 3) -> dict:
  from lmdm_jax.conditioners.prompt import T5Prompts
  from lmdm_jax.text.t5 import T5Config, T5Encoder
  cfg = T5Config()                       # t5-base
  ids = jnp.ones((batch, tokens), jnp.int32)
  params = jax.jit(T5Encoder(cfg).init)(jax.random.PRNGKey(0), ids,
                                        ids)["params"]
  with tempfile.TemporaryDirectory() as tmp:
    enc = T5Prompts(params, _spm(tmp), cfg.__dict__, tokens)
    caps = [f"slow ambient piano with warm pads at {60 + i} bpm"
            for i in range(batch)]
    first, med = _timed(lambda: enc.encode(caps), repeats)
    mask = jnp.ones((batch, tokens), bool)
    flops = _flops(enc._fn, params, ids, mask)
  n = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
  return {"params": n, "batch": batch, "tokens": tokens,
          "compile_s": first - med, "encode_s": med,
          "encode_s_per_caption": med / batch, "flops": flops}


def train_step(batch: int = 1, steps: int = 2) -> dict:
  from lmdm_jax.bench import train as bench
  from lmdm_jax.configs import CONFIG_DIR, load_config
  cfg = load_config(os.path.join(CONFIG_DIR, "finetune.py") + ":bc")
  with cfg.unlocked():
    cfg.mesh.devices = 1
  out = bench.run(cfg, "configs/finetune.py:bc", steps, 1, batch)
  return {k: v for k, v in out.items()
          if k in ("params", "global_batch", "window_frames",
                   "first_step_s (compile + run)", "step_s_median",
                   "examples_per_s", "memory")}


def step_flops(batch: int) -> float:
  """FLOPs of one stage-1 loss + gradient at SAO-Small (batch rows)."""
  from lmdm_jax.configs import CONFIG_DIR, load_config
  from lmdm_jax.model.init import param_shapes
  from lmdm_jax.train import finetune
  cfg = load_config(os.path.join(CONFIG_DIR, "finetune.py") + ":bc")
  spec = finetune.FinetuneSpec.from_config(cfg)
  m, g = spec.model, spec.geometry
  params = param_shapes(m, int(cfg.cond_tokens))
  batch_d = {"latents": jax.ShapeDtypeStruct((batch, g.window,
                                              m.io_channels), jnp.float32),
             "cross_tokens": jax.ShapeDtypeStruct(
                 (batch, int(cfg.cond_tokens), m.cond_token_dim),
                 jnp.float32),
             "global_cond": jax.ShapeDtypeStruct((batch, m.global_cond_dim),
                                                 jnp.float32)}
  keys = jax.ShapeDtypeStruct((batch, 2), jnp.uint32)
  f = jax.jit(jax.grad(lambda p, b, k: finetune.loss_fn(p, spec, b, k)[0]))
  return _flops(f, params, batch_d, keys)


def oobleck_encode(seconds: float = 6.0, chunk: int = 64,
                   batch: int = 2) -> dict:
  from lmdm_jax.codecs import get_codec
  from lmdm_jax.codecs.oobleck_model import OobleckConfig
  from lmdm_jax.convert.oobleck import param_shapes
  cfg = OobleckConfig()                  # SAO's VAE
  rng = np.random.default_rng(0)
  params = jax.tree.map(
      lambda a: (0.01 * rng.standard_normal(a.shape)).astype(np.float32),
      param_shapes(cfg))
  frames = int(seconds * 44100) // cfg.hop
  x = rng.uniform(-0.1, 0.1, (2, frames * cfg.hop)).astype(np.float32)
  audio_s = frames * cfg.hop / 44100
  out = {"audio_s": audio_s, "frames": frames,
         "encoder_radius": cfg.encoder_radius()}
  whole = get_codec("oobleck", config=cfg, params=params,
                    chunk=frames, batch=1)
  first, med = _timed(lambda: whole.encode(x), 1)
  out["whole"] = {"first_s": first, "encode_s": med,
                  "audio_s_per_s": audio_s / med}
  win = get_codec("oobleck", config=cfg, params=params, chunk=chunk,
                  batch=batch)
  first, med = _timed(lambda: win.encode(x), 1)
  n = chunk + 2 * win.margin
  calls = -(-(-(-frames // chunk)) // batch)
  out["batched"] = {"chunk": chunk, "batch": batch, "window_frames": n,
                    "calls": calls, "first_s": first, "encode_s": med,
                    "audio_s_per_s": audio_s / med,
                    "encoded_frames_per_audio_frame": calls * batch * n /
                    frames}
  return out


def run(parts=("t5", "oobleck", "step"), batch: int = 1,
        t5_batch_size: int = 8, tokens: int = 64, steps: int = 2,
        seconds: float = 6.0) -> dict:
  from lmdm_jax.bench.stream import device_info
  out = {"device": device_info(), "jax": jax.__version__}
  if "t5" in parts:
    out["t5"] = t5_batch(t5_batch_size, tokens)
  if "oobleck" in parts:
    out["oobleck"] = oobleck_encode(seconds)
  if "step" in parts:
    out["step"] = train_step(batch, steps)
  if "step" in parts or "step_flops" in parts:
    out.setdefault("step", {"global_batch": batch})["flops"] = step_flops(
        batch)
  if "t5" in out and "step" in out:
    t5, st = out["t5"], out["step"]
    per_row = t5["encode_s_per_caption"]
    if "step_s_median" in st:
      out["t5_share_of_step"] = per_row * batch / (
          per_row * batch + st["step_s_median"])
    if t5["flops"] and st["flops"]:
      out["t5_flops_share_per_row"] = (t5["flops"] / t5["batch"]) / (
          t5["flops"] / t5["batch"] + st["flops"] / batch)
  return out
