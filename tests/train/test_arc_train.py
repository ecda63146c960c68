"""ARC-Forcing trainer: 8 devices == 1 device (with accumulation), exact
resume through `lmdm train`'s loop, global prompt permutation, the
discriminator's backbone taken from the generator, and bad configs."""
import os

import jax
import numpy as np
import pytest

from lmdm_jax.train.arc import objective as ao
from lmdm_jax.train.arc import train as at
from lmdm_jax.configs import load_config
from lmdm_jax.model.init import randomize
from lmdm_jax.train import parallel
from lmdm_jax.train import state as train_state

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
# One xdist group (conftest.py), on purpose: the 8-vs-1-device test and the
# resume test compile the same one-device G and D steps (`cached_steps`
# memoises them on spec, optimisers, devices, accumulation and EMA), and the
# eager initialisation of these models is compiled op by op once per
# process; split over two workers, both would be paid twice.


def tiny_arc(**train):
  """configs/arc_forcing.py:bc,tiny with a 1-layer DiT (fast compiles) and
  Adam eps 1e-6 (see test_train_core: noise-level gradients of the key
  norm biases must stay noise-level updates)."""
  cfg = load_config(os.path.join(ROOT, "configs", "arc_forcing.py:bc,tiny"))
  cfg.model.depth = 1
  cfg.disc.exit_layer = 0
  cfg.optim_g.eps = cfg.optim_d.eps = 1e-6
  cfg.train.update(batch_size=16, accum_steps=2, steps=3, ema_decay=0.9)
  cfg.mesh.devices = 1
  cfg.train.update(**train)
  return cfg


def random_state(cfg, spec):
  tx_g = train_state.make_optimizer(cfg.optim_g)
  tx_d = train_state.make_optimizer(cfg.optim_d)
  s = at.init_state(cfg, spec, tx_g, tx_d, load=False)
  g = randomize(s.g_params, jax.random.PRNGKey(1))
  d = randomize(s.d_params, jax.random.PRNGKey(2))
  return s.replace(g_params=g, g_opt=tx_g.init(g), d_params=d,
                   d_opt=tx_d.init(d), g_ema=g)


def random_batch(spec, n, seed=0):
  rng = np.random.default_rng(seed)
  m = spec.stream.model
  return {"latents": rng.normal(size=(n, spec.window, m.io_channels)),
          "cross_tokens": rng.normal(size=(n, spec.stream.cond_tokens,
                                           m.cond_token_dim)),
          "global_cond": rng.normal(size=(n, m.global_cond_dim))}


def _max_diff(a, b):
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.slow        # compiles G and D steps twice (8 devices, 1 device)
def test_eight_devices_equal_one_device_with_accumulation():
  """G, D, G updates on a global batch of 16: 8 devices (no accumulation)
  and 1 device (2 microbatches) give the same players, metrics and EMA."""
  spec = ao.ARCSpec.from_config(tiny_arc())
  state0 = jax.device_get(random_state(tiny_arc(), spec))
  batch = {k: v.astype(np.float32) for k, v in
           random_batch(spec, 16).items()}
  out = {}
  for n, accum in ((1, 2), (8, 1)):
    cfg = tiny_arc(accum_steps=accum)
    mesh = parallel.make_mesh(jax.devices()[:n])
    g_step, d_step = at.cached_steps(spec, cfg, mesh)
    state = parallel.put_replicated(state0, mesh)
    metrics = []
    for fn in (g_step, d_step, g_step):
      state, m = fn(state, parallel.put_batch(batch, mesh))
      metrics.append(jax.device_get(m))
    out[n] = (jax.device_get(state), metrics)
  (s1, m1), (s8, m8) = out[1], out[8]
  for a, b in zip(m1, m8):
    assert a.keys() == b.keys()
    for k in a:
      np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-5,
                                 err_msg=k)
  assert int(s1.step) == int(s8.step) == 3
  # Summation order differs (8 shards vs 2 microbatches); Adam turns that
  # into update noise: 5e-5 is 5% of one step at lr 1e-3.
  assert _max_diff(s1.g_params, s8.g_params) <= 5e-5
  assert _max_diff(s1.d_params, s8.d_params) <= 5e-5
  assert _max_diff(s1.g_ema, s8.g_ema) <= 5e-5
  # Each player moved, and only on its own steps.
  assert _max_diff(s1.g_params, state0.g_params) > 1e-4
  assert _max_diff(s1.d_params, state0.d_params) > 1e-4
  assert {"g_loss", "g_gap", "g_grad_norm", "g_steps_hist"} <= set(m1[0])
  assert {"d_loss", "d_relativistic", "d_contrastive", "d_gap",
          "d_contrastive_accuracy", "d_grad_norm"} <= set(m1[1])
  hist = np.asarray(m1[0]["g_steps_hist"])
  assert hist.sum() == spec.arc.blocks and hist[0] == 0


def test_global_roll_is_the_permutation_of_the_whole_batch():
  from jax.sharding import PartitionSpec as P
  mesh = parallel.make_mesh(jax.devices()[:8])
  x = np.arange(16, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
  f = jax.jit(jax.shard_map(at.global_roll, mesh=mesh, in_specs=P("data"),
                            out_specs=P("data")))
  np.testing.assert_array_equal(np.asarray(f(x)), np.roll(x, 1, axis=0))


def _write_stage1(tmp_path, cfg, spec):
  import orbax.checkpoint as ocp
  g = randomize(at.init_state(cfg, spec, train_state.make_optimizer(
      cfg.optim_g), train_state.make_optimizer(cfg.optim_d),
      load=False).g_params, jax.random.PRNGKey(3))
  path = str(tmp_path / "stage1")
  ckptr = ocp.StandardCheckpointer()
  ckptr.save(path, jax.device_get(g))
  ckptr.wait_until_finished()
  return path, jax.device_get(g)


def test_train_resumes_exactly_and_starts_from_stage1(tmp_path):
  cfg = tiny_arc()
  spec = ao.ARCSpec.from_config(cfg)
  cfg.init.params, g0 = _write_stage1(tmp_path, cfg, spec)
  cfg.ckpt.every_steps = 2
  quiet = lambda *a: None
  straight = at.train(cfg, str(tmp_path / "a"), log=quiet, progress=False)
  at.train(cfg, str(tmp_path / "b"), log=quiet, progress=False,
           stop_after=2)
  resumed = at.train(cfg, str(tmp_path / "b"), log=quiet, progress=False)
  assert int(straight.step) == int(resumed.step) == 3
  for a, b in zip(jax.tree.leaves(jax.device_get(straight)),
                  jax.tree.leaves(jax.device_get(resumed))):
    np.testing.assert_array_equal(a, b)
  # The discriminator's backbone starts as the generator's shared leaves.
  fresh = at.init_state(cfg, spec, train_state.make_optimizer(cfg.optim_g),
                        train_state.make_optimizer(cfg.optim_d), log=quiet)
  np.testing.assert_array_equal(
      fresh.d_params["backbone"]["transformer"]["layers_0"]["self_attn"]
      ["to_qkv"]["kernel"],
      g0["transformer"]["layers_0"]["self_attn"]["to_qkv"]["kernel"])
  lines = open(tmp_path / "a" / "metrics.jsonl").read().splitlines()
  assert len(lines) == 3 and '"g_loss"' in lines[0] and '"d_loss"' in lines[1]


def test_bad_configs_are_refused(tmp_path):
  cfg = tiny_arc()
  cfg.data.window = 99
  with pytest.raises(ValueError, match="data.window 99 must be s"):
    ao.ARCSpec.from_config(cfg)
  cfg = tiny_arc()
  cfg.arc.k_min = 3
  with pytest.raises(ValueError, match="k_min <= arc.k_max"):
    ao.ARCSpec.from_config(cfg)
  cfg = tiny_arc()
  spec = ao.ARCSpec.from_config(cfg)
  with pytest.raises(ValueError, match="starts from a stage-1 model"):
    at.init_state(cfg, spec, train_state.make_optimizer(cfg.optim_g),
                  train_state.make_optimizer(cfg.optim_d))


def test_discriminator_warmup_trains_the_base_model_on_long_windows(
    tmp_path):
  """configs/disc_warmup.py:tiny runs on stage 1's loop: full-window
  flow matching of the base model (no input-add path), finite losses."""
  from lmdm_jax.train.arc.warmup import BaseSpec
  from lmdm_jax.train import objective
  cfg = load_config(os.path.join(ROOT, "configs", "disc_warmup.py:tiny"))
  cfg.model.depth = 1
  cfg.train.update(steps=6, log_every=1)
  spec = objective.spec_for(cfg)
  assert isinstance(spec, BaseSpec) and spec.window == cfg.data.window
  objective.train(cfg, str(tmp_path), log=lambda *a: None, progress=False)
  import json
  rows = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  losses = [r["loss"] for r in rows]
  assert len(losses) == 6 and all(np.isfinite(losses))
  assert rows[0]["frames_per_s"] > 0
  import dataclasses
  with pytest.raises(ValueError, match="no input-add path"):
    BaseSpec(dataclasses.replace(spec.model, input_add_dim=9), 16)


def test_r1_r2_penalties_are_the_perturbation_estimate():
  """With r1/r2 weights the D loss adds w * mean((D(x_t + s n) - D(x_t))^2)
  / s^2 on real (R1) and fake (R2) inputs, and reports both."""
  import dataclasses
  import jax.numpy as jnp
  cfg = tiny_arc()
  spec = ao.ARCSpec.from_config(cfg)
  pen = dataclasses.replace(spec, r1_weight=0.5, r2_weight=0.25,
                            penalty_sigma=0.1)
  state = random_state(cfg, spec)
  batch = {k: jnp.asarray(v, jnp.float32)
           for k, v in random_batch(spec, 2, seed=1).items()}
  batch["wrong_tokens"] = jnp.roll(batch["cross_tokens"], 1, axis=0)
  keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.PRNGKey(0), i))(
      jnp.arange(2))
  steps = jnp.asarray([1, 2], jnp.int32)
  base, m0 = ao.discriminator_loss(state.d_params, state.g_params, spec,
                                   batch, keys, steps)
  total, m1 = ao.discriminator_loss(state.d_params, state.g_params, pen,
                                    batch, keys, steps)
  assert "r1" not in m0 and float(m1["r1"]) > 0 and float(m1["r2"]) > 0
  np.testing.assert_allclose(
      float(total), float(base) + 0.5 * float(m1["r1"]) +
      0.25 * float(m1["r2"]), rtol=1e-5)


def test_objectives_give_finite_losses_and_separate_gradients():
  """Each player's loss is finite and its gradient reaches only its own
  parameters (the other player is a constant in it)."""
  import jax.numpy as jnp
  cfg = tiny_arc()
  spec = ao.ARCSpec.from_config(cfg)
  state = random_state(cfg, spec)
  batch = {k: jnp.asarray(v, jnp.float32)
           for k, v in random_batch(spec, 2, seed=3).items()}
  batch["wrong_tokens"] = jnp.roll(batch["cross_tokens"], 1, axis=0)
  keys = jax.random.split(jax.random.PRNGKey(0), 2)
  steps = jnp.asarray([2, 1], jnp.int32)
  g_loss, (gg, gd) = jax.jit(jax.value_and_grad(
      lambda pg, pd: ao.generator_loss(pg, pd, spec, batch, keys, steps)[0],
      argnums=(0, 1)))(state.g_params, state.d_params)
  d_loss, (dd, dg) = jax.jit(jax.value_and_grad(
      lambda pd, pg: ao.discriminator_loss(pd, pg, spec, batch, keys,
                                           steps)[0],
      argnums=(0, 1)))(state.d_params, state.g_params)
  assert np.isfinite(float(g_loss)) and np.isfinite(float(d_loss))
  norm = lambda t: max(float(jnp.abs(a).max()) for a in jax.tree.leaves(t))
  assert norm(gg) > 0 and norm(dd) > 0
  assert norm(gd) == 0 and norm(dg) == 0     # each player moves only itself


@pytest.mark.parametrize("variant", ["", "balanced", "smoke"])
def test_demo_arc_configs_build(variant):
  """configs/arc_forcing_demo.py and its variants give valid ARC specs
  (windows, head downsampling, step range) on the demo model's shape."""
  cfg = load_config(os.path.join(ROOT, "configs",
                                 f"arc_forcing_demo.py:{variant}"))
  spec = ao.ARCSpec.from_config(cfg)
  assert spec.window == int(cfg.data.window)
  assert spec.stream.model.embed_dim == 192
  if variant == "balanced":
    assert spec.r1_weight == spec.r2_weight == 0.1
    assert cfg.optim_g.lr == cfg.optim_d.lr == 1e-5
  with pytest.raises(ValueError, match="unknown variant"):
    load_config(os.path.join(ROOT, "configs", "arc_forcing_demo.py:huge"))


@pytest.mark.slow
def test_perturbation_control_matches_the_change_tensor_by_tensor(tmp_path):
  """benchmarks/perturb_params.py: each tensor moves by the norm the
  post-trained model moved it, in a random direction; mismatched packages
  are refused."""
  import subprocess
  import sys
  rng = np.random.default_rng(1)
  base = {"a": rng.standard_normal((4, 3)).astype(np.float32),
          "b": rng.standard_normal(5).astype(np.float32)}
  moved = {"a": base["a"] + 0.1, "b": base["b"] * 1.5}
  for name, params in (("base", base), ("moved", moved)):
    os.makedirs(tmp_path / name)
    np.savez(tmp_path / name / "params.npz", **params)
    (tmp_path / name / "model.json").write_text("{}")
  script = os.path.join(ROOT, "benchmarks", "perturb_params.py")
  subprocess.run([sys.executable, script, "--base", str(tmp_path / "base"),
                  "--moved", str(tmp_path / "moved"), "--out",
                  str(tmp_path / "out")], check=True, capture_output=True)
  out = np.load(tmp_path / "out" / "params.npz")
  for k in base:
    d_out, d_moved = out[k] - base[k], moved[k] - base[k]
    np.testing.assert_allclose(np.linalg.norm(d_out), np.linalg.norm(d_moved),
                               rtol=1e-5)
    cos = (d_out * d_moved).sum() / (np.linalg.norm(d_out) *
                                     np.linalg.norm(d_moved))
    assert abs(cos) < 0.99                  # not the post-trained direction
  np.savez(tmp_path / "moved" / "params.npz", a=moved["a"])
  r = subprocess.run([sys.executable, script, "--base", str(tmp_path / "base"),
                      "--moved", str(tmp_path / "moved"), "--out",
                      str(tmp_path / "out2")], capture_output=True, text=True)
  assert r.returncode != 0 and "different parameters" in r.stderr


def test_arc_report_refuses_evaluations_of_different_sizes(tmp_path):
  """benchmarks/arc_demo_report.py: FD of 8 and 32 clips must not share a
  table (FD is biased by the sample count)."""
  import json
  import sys
  from lmdm_jax.bench import arc_demo_report

  def results(clips, fd):
    return {"clips": clips, "fd_kl": {"steps_2": {
        "fd": fd, "kl": 1.0, "cfg_scale": 1.0,
        "model_latency_s_median": 0.1}}}
  for name, clips, fd in (("a", 32, 90.0), ("b", 32, 100.0), ("c", 8, 1.0)):
    (tmp_path / f"{name}.json").write_text(json.dumps(results(clips, fd)))
  metrics = tmp_path / "m.jsonl"
  metrics.write_text(
      json.dumps({"step": 1, "g_loss": 0.7, "g_grad_norm": 1.0}) + "\n" +
      json.dumps({"step": 2, "d_loss": 2.0, "d_relativistic": 0.7,
                  "d_gap": 0.1, "d_contrastive_accuracy": 0.5}) + "\n")
  out = tmp_path / "s.json"
  arc_demo_report.main(["--eval", f"x=y={tmp_path / 'a.json'}", "--eval",
                        f"B={tmp_path / 'b.json'}", "--metrics", str(metrics),
                        "--out", str(out)])
  s = json.loads(out.read_text())
  assert s["models"]["x=y"]["fd_kl"]["2"]["fd"] == 90.0   # label may hold =
  assert s["training"]["updates"] == 2
  with pytest.raises(SystemExit, match="different clip counts"):
    arc_demo_report.main(["--eval", f"a={tmp_path / 'a.json'}", "--eval",
                          f"c={tmp_path / 'c.json'}", "--metrics",
                          str(metrics), "--out", str(out)])
