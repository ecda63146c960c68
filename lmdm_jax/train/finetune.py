"""The stage-1 fine-tuning objective of LMDM on one training window.

A window is [context s | target o] = T clean latent frames x0 [T, C]. The
target frames are noised (rectified flow, x_t = (1 - t) x0 + t eps) and the
model predicts v = eps - x0 for them; the context frames enter only as
conditioning, through the input-add features [1, x0, zero pad] with their
noisy input zeroed by the router, exactly as in a stream
(`streaming.state.known_features`). The loss is the MSE on target frames
only, so nothing is learnt about context frames' velocities.

Per example (independent draws, keyed by the example's global index so one
device and N devices see the same randomness):

  outpainting dropout   with p_uncond the whole context's latents are zeroed,
                        else with p_partial the 1..max_partial_chunks oldest
                        chunks (of `block` frames) are zeroed, in place (no
                        shift). The mask channel stays 1, so a zeroed context
                        looks like a stream primed with silence-latents.
  CFG dropout           with cfg_dropout the whole cross-attention input
                        (every token: T5's and seconds_total's) becomes
                        zeros (the unconditional branch of
                        `streaming.steps`); the global conditioning is
                        never dropped. This is stable-audio-tools' rule
                        (DiffusionTransformer.forward, cfg_dropout_prob:
                        one Bernoulli per example replaces cross_attn_cond
                        by zeros_like; global_embed is passed through, and
                        its CFG branch also keeps global_embed), which the
                        LMDM code trains with. Independently, with
                        input_add_dropout the whole input-add condition
                        (mask included) becomes zeros.
  noise level           t from `timesteps.sample`, optionally length-shifted.
  controls              (models with `DiTConfig.controls` only) batch
                        entries control_<name> [B, T, dim + 1] packed
                        [values, mask], computed from each example's audio
                        (dataset features) or latents (the partner); per
                        control dropout and random median filtering
                        (lmdm_jax/model/control_augment.py), then the partner
                        visibility cut at window index s + partner_visibility
                        (lmdm_jax/model/control_inputs.py, shared with
                        streaming).
                        A control missing from the batch is absent.

Shapes: B examples, T = s + o frames, C latent channels, L text tokens,
Dc text width, G global-conditioning width.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from lmdm_jax.configs import dit_config, geometry
from lmdm_jax.model import control_augment as augment
from lmdm_jax.model import control_inputs
from lmdm_jax.diffusion import flow
from lmdm_jax.model import masks
from lmdm_jax.model.config import DiTConfig, Geometry
from lmdm_jax.model.dit import DiT
from lmdm_jax.train import state as train_state
from lmdm_jax.train import timesteps

BATCH_PREFIX = "control_"     # batch["control_<name>"]: [B, T, dim + 1]


@dataclasses.dataclass(frozen=True)
class FinetuneSpec:
  """Static description of the objective (hashable: closed over by jit).

  Attributes:
    model: the DiT.
    geometry: window geometry; mode picks the attention mask ("bc", "ed" or
      "outpaint").
    p_uncond: probability that the whole context is zeroed.
    p_partial: probability that only the oldest 1..max_partial_chunks chunks
      are zeroed (exclusive with p_uncond).
    max_partial_chunks: most chunks zeroed by partial dropout.
    cfg_dropout: probability that the text tokens are dropped.
    input_add_dropout: probability that the input-add condition is dropped.
    sampler, logit_mean, logit_std, logsnr_min, logsnr_max: see timesteps.
    shift: apply SAO's length-dependent time shift.
    shift_min_length, shift_max_length: its length range in frames.
    control_dropout: per-control probability that a control is absent
      for a whole example (models with controls only).
    median_p, median_max: probability of median filtering a control curve,
      and the largest (odd) kernel in frames.
    partner_visibility: t_f in frames relative to the block start; partner
      frames at window index >= context + t_f are hidden.
    partner_visibilities: if given, t_f is drawn per example uniformly from
      these values instead (one model then streams at any of them; the
      mask channel tells it where the partner stops).
    partner_dropout: probability that the partner is absent for a whole
      example; negative: `control_dropout`. A jam model learns to use its
      partner only if it sees one often enough (docs/control.md).
  """
  model: DiTConfig
  geometry: Geometry
  p_uncond: float = 0.2
  p_partial: float = 0.3
  max_partial_chunks: int = 4
  cfg_dropout: float = 0.1
  input_add_dropout: float = 0.1
  sampler: str = "uniform"
  logit_mean: float = 0.0
  logit_std: float = 1.0
  logsnr_min: float = -6.0
  logsnr_max: float = 2.0
  shift: bool = True
  shift_min_length: int = 256
  shift_max_length: int = 4096
  control_dropout: float = 0.5
  median_p: float = 0.5
  median_max: int = 9
  partner_visibility: int = 0
  partner_visibilities: tuple = ()
  partner_dropout: float = -1.0

  def __post_init__(self):
    object.__setattr__(self, "partner_visibilities",
                       tuple(int(v) for v in self.partner_visibilities))
    for name in ("p_uncond", "p_partial", "cfg_dropout", "input_add_dropout"):
      p = getattr(self, name)
      if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {p}")
    if self.p_uncond + self.p_partial > 1.0:
      raise ValueError(f"p_uncond + p_partial must be <= 1, got "
                       f"{self.p_uncond} + {self.p_partial}")
    chunks = self.geometry.context // self.geometry.block
    if self.p_partial and not 1 <= self.max_partial_chunks <= chunks:
      raise ValueError(
          f"max_partial_chunks must be in [1, {chunks}] (the context has "
          f"{chunks} chunks of {self.geometry.block} frames), got "
          f"{self.max_partial_chunks}")
    if self.sampler not in timesteps.SAMPLERS:
      raise ValueError(f"unknown timestep sampler {self.sampler!r}; known: "
                       f"{timesteps.SAMPLERS}")
    augment.check_params(self.control_dropout, self.median_p,
                         self.median_max)
    if self.partner_dropout >= 0:
      augment.check_params(self.partner_dropout, self.median_p,
                           self.median_max, "partner_dropout")
    if control_inputs.PARTNER in self.model.control_dims:
      for t_f in (self.partner_visibility,) + self.partner_visibilities:
        control_inputs.visibility_cutoff(self.geometry.context,
                                         self.geometry.block, t_f)
    if self.model.input_add_dim < 1 + self.model.io_channels:
      raise ValueError(
          f"input_add_dim {self.model.input_add_dim} cannot hold the "
          f"[mask, latents] features (1 + {self.model.io_channels})")

  @classmethod
  def from_config(cls, cfg) -> "FinetuneSpec":
    """From a finetune config (`cfg.model`, `cfg.geometry`, `cfg.loss`)."""
    loss = dict(cfg.loss.to_dict())
    names = {f.name for f in dataclasses.fields(cls)} - {"model", "geometry"}
    unknown = sorted(set(loss) - names)
    if unknown:
      raise ValueError(f"unknown loss config keys {unknown}; known: "
                       f"{sorted(names)}")
    return cls(dit_config(cfg), geometry(cfg), **loss)

  def loss(self, params, batch: dict, keys):
    """(loss [], per-example losses [B]) of a batch: `loss_fn` (every
    objective the stage-1 step trains has this method)."""
    return loss_fn(params, self, batch, keys)

  def merge_initial(self, fresh, loaded, log=print):
    """Starting parameters from a loaded tree: every leaf the model has
    (leaves missing from `loaded`, e.g. SAO's absent input-add path, keep
    their fresh init)."""
    return train_state.merge_params(fresh, loaded, log)



def context_keep(k_mode, k_n, g: Geometry, p_uncond: float,
                 p_partial: float, max_partial_chunks: int):
  """Outpainting context dropout of one example: keep [s] (1 = context
  frame kept). With p_uncond all frames are zeroed, else with p_partial the
  oldest 1..max_partial_chunks chunks of `block` frames (in place)."""
  u = jax.random.uniform(k_mode)
  n = jax.random.randint(k_n, (), 1, max(max_partial_chunks, 1) + 1)
  chunk = jnp.arange(g.context) // g.block
  return jnp.where(u < p_uncond, 0.0,
                   jnp.where(u < p_uncond + p_partial,
                             (chunk >= n).astype(jnp.float32), 1.0))


def draw(spec: FinetuneSpec, key) -> dict:
  """Random choices of one example (call under vmap for a batch).

  Returns t [], eps [T, C], keep [s] (1 = context frame kept), text []
  and input_add [] (1 = condition kept).
  """
  g = spec.geometry
  k_t, k_eps, k_mode, k_n, k_txt, k_add = jax.random.split(key, 6)
  t = timesteps.sample(k_t, 1, spec.sampler, mean=spec.logit_mean,
                       std=spec.logit_std, logsnr_min=spec.logsnr_min,
                       logsnr_max=spec.logsnr_max)
  if spec.shift:
    t = timesteps.shift(t, g.window, min_length=spec.shift_min_length,
                        max_length=spec.shift_max_length)
  eps = jax.random.normal(k_eps, (g.window, spec.model.io_channels))
  keep = context_keep(k_mode, k_n, g, spec.p_uncond, spec.p_partial,
                      spec.max_partial_chunks)
  text = (jax.random.uniform(k_txt) >= spec.cfg_dropout).astype(jnp.float32)
  add = (jax.random.uniform(k_add) >= spec.input_add_dropout).astype(
      jnp.float32)
  d = dict(t=t[0], eps=eps, keep=keep, text=text, input_add=add)
  if spec.model.controls:
    # A key of its own: the draws above are those of a model without
    # controls.
    names = [n for n, _ in spec.model.controls]
    dropout = [spec.partner_dropout if (n == control_inputs.PARTNER and
                                        spec.partner_dropout >= 0)
               else spec.control_dropout for n in names]
    c = augment.draw(jax.random.fold_in(key, 7), names, dropout,
                     spec.median_p, spec.median_max)
    d.update(control_keep=c["keep"], control_kernel=c["kernel"])
    if spec.partner_visibilities:
      choices = jnp.asarray(spec.partner_visibilities, jnp.int32)
      d["partner_cutoff"] = spec.geometry.context + jax.random.choice(
          jax.random.fold_in(key, 11), choices)
  return d


def window_controls(spec: FinetuneSpec, batch: dict, d: dict):
  """Augmented, visibility-cut controls {name: [B, T, dim + 1]} of a batch
  (None for a model without controls). Batch entries control_<name>; a
  missing one is absent."""
  m, g = spec.model, spec.geometry
  if not m.controls:
    return None
  names = [n for n, _ in m.controls]
  given = {n: batch[BATCH_PREFIX + n] for n in names
           if BATCH_PREFIX + n in batch}
  if not given:
    return {}

  def one(ctl, keep, kernel):
    return augment.apply_all(ctl, names, {"keep": keep, "kernel": kernel},
                             spec.median_max)

  out = jax.vmap(one)(given, d["control_keep"], d["control_kernel"])
  if "partner_cutoff" in d and control_inputs.PARTNER in out:
    # Per-example cut-off: the same rule as `partner_cut`, traced.
    keep = (jnp.arange(g.window)[None, :] <
            d["partner_cutoff"][:, None]).astype(jnp.float32)
    out = dict(out)
    out[control_inputs.PARTNER] = out[control_inputs.PARTNER] * keep[..., None]
    return out
  return control_inputs.cut_controls(
      out, control_inputs.visibility_cutoff(g.context, g.block,
                                            spec.partner_visibility))


def model_inputs(spec: FinetuneSpec, latents, d: dict):
  """Network inputs of a batch of windows given the draws.

  Args:
    latents: [B, T, C] clean windows.
    d: draws stacked on B (see `draw`).

  Returns:
    x [B, T, C] (zeros on context, x_t on target), input_add [B, T, A],
    router [T], target velocity v [B, T, C].
  """
  g, m = spec.geometry, spec.model
  s = g.context
  x_t = flow.noise(latents, d["eps"], d["t"])
  known = np.r_[np.ones(s), np.zeros(g.block)].astype(np.float32)
  x = x_t * (1.0 - known)[None, :, None]
  ctx = latents[:, :s] * d["keep"][:, :, None]
  feats = control_inputs.known_features(ctx, m.input_add_dim)
  feats = jnp.pad(feats, [(0, 0), (0, g.block), (0, 0)])
  feats = feats * d["input_add"][:, None, None]
  return x, feats, 1.0 - known, d["eps"] - latents


def target_mse(v_pred, v_target, context: int):
  """Per-example MSE over target frames only: [B, T, C] x2 -> [B]."""
  err = jnp.square(v_pred[:, context:].astype(jnp.float32) -
                   v_target[:, context:].astype(jnp.float32))
  return err.mean(axis=(1, 2))


def window_loss(params, spec: FinetuneSpec, batch: dict, d: dict):
  """Per-example target-frame losses [B] of a batch given its draws.

  Args:
    params: DiT parameters.
    batch: latents [B, T, C], cross_tokens [B, L, Dc], global_cond [B, G],
      and for a model with controls optionally control_<name> [B, T,
      dim + 1].
    d: draws stacked on B (see `draw`).
  """
  g, m = spec.geometry, spec.model
  x, feats, router, v_target = model_inputs(spec, batch["latents"], d)
  cross = glob = None
  if m.cond_token_dim:
    cross = batch["cross_tokens"] * d["text"][:, None, None]
  if m.global_cond_dim:
    glob = batch["global_cond"]
  mask = masks.window_mask(g.mode, g.window, g.context, g.block,
                           g.window_chunks)
  v = DiT(m).apply({"params": params}, x, d["t"], cross, glob, feats,
                   router, mask, controls=window_controls(spec, batch, d))
  return target_mse(v, v_target, g.context)


def loss_fn(params, spec: FinetuneSpec, batch: dict, keys):
  """Mean target-frame flow-matching loss of a batch.

  keys: [B] PRNG keys, one per example. Returns (loss [], losses [B]).
  """
  d = jax.vmap(lambda k: draw(spec, k))(keys)
  per_example = window_loss(params, spec, batch, d)
  return per_example.mean(), per_example


def check_batch(spec: FinetuneSpec, batch: dict, cond_tokens: int) -> None:
  """Raises ValueError naming the expected shape of any wrong batch entry."""
  m, g = spec.model, spec.geometry
  b = np.shape(batch["latents"])[0]
  want = {"latents": (b, g.window, m.io_channels)}
  if m.cond_token_dim:
    want["cross_tokens"] = (b, cond_tokens, m.cond_token_dim)
  if m.global_cond_dim:
    want["global_cond"] = (b, m.global_cond_dim)
  controls = {k[len(BATCH_PREFIX):]: v for k, v in batch.items()
              if k.startswith(BATCH_PREFIX)}
  control_inputs.check(m.control_dims, controls, b, g.window,
                       "batch controls")
  for name, shape in want.items():
    if name not in batch:
      raise ValueError(f"batch has no {name!r}; expected shape {shape}")
    if tuple(np.shape(batch[name])) != shape:
      raise ValueError(f"batch[{name!r}] has shape "
                       f"{tuple(np.shape(batch[name]))}; expected {shape}")
