"""LiveSession: controls between blocks, no recompiles, exact save/restore."""
import hashlib

import jax
import numpy as np
import pytest

from helpers import tiny_setup
from lmdm_jax.live.session import LiveSession


def fake_encoder(spec):
  """Deterministic per-text tokens (stands in for a text encoder)."""
  def encode(text):
    seed = int(hashlib.sha256(text.encode()).hexdigest()[:8], 16)
    return np.random.default_rng(seed).standard_normal(
        (spec.cond_tokens, spec.model.cond_token_dim)).astype(np.float32)
  return encode


@pytest.fixture(scope="module")
def session_parts(tiny_bc_live):
  """conftest's tiny BC stream (batch 1, 2 steps, CFG branch), shared with
  the live CLI tests."""
  return tiny_bc_live


def make(session_parts, **kw):
  spec, params = session_parts
  return LiveSession(params, spec, fake_encoder(spec), steps_options=(1, 2),
                     **kw)


def test_controls_change_without_recompiling(session_parts):
  s = make(session_parts)
  # Streams are shared by sessions of equal spec (`stream_for`), so other
  # tests may already have filled their caches: count what *playing* adds.
  compiled = {k: st._block._cache_size() for k, st in s.streams.items()}
  assert all(n >= 1 for n in compiled.values())   # all compiled at start
  s.set_prompts({"bach chorale": 1.0})
  outs = [s.next_block()]
  s.set_prompts({"bach chorale": 0.5, "ragtime": 0.5})
  s.set_cfg(3.0, rescale=0.5)
  outs.append(s.next_block())
  s.set_steps(1)
  s.set_seed(7)
  outs.append(s.next_block())
  s.crossfade_to({"ragtime": 1.0}, blocks=3)
  for _ in range(3):
    outs.append(s.next_block())
  assert {k: st._block._cache_size() for k, st in s.streams.items()} == (
      compiled)
  assert [e["steps"] for e in s.log] == [2, 2, 1, 1, 1, 1]
  fade = [e["prompts"]["ragtime"] for e in s.log[3:]]
  np.testing.assert_allclose(fade, [2 / 3, 5 / 6, 1.0])
  assert s.performance().shape == (1, 6 * 4, 8)
  assert not np.allclose(outs[0], outs[1])


def test_fifty_blocks_of_changing_controls_compile_nothing(session_parts):
  """50 blocks, every control changing (mixes, crossfades, CFG, rescale,
  steps, seed, dominant-prompt drops and re-priming): every jitted function
  of every stream keeps the cache it had after start-up."""
  s = make(session_parts, drop_frames=4)

  def sizes():
    return {(k, name): getattr(st, name)._cache_size()
            for k, st in s.streams.items()
            for name in ("_init_state", "_block", "cache_update",
                         "denoise_step", "append_block")}
  compiled = sizes()
  rng = np.random.default_rng(0)
  names = ["bach chorale", "ragtime", "organ", "folk tune"]
  for i in range(50):
    if i % 7 == 3:
      s.crossfade_to({names[i % 4]: 1.0}, blocks=2)
    elif i % 2 == 0:
      w = rng.uniform(0.1, 1.0, size=2)
      s.set_prompts({names[i % 4]: float(w[0]),
                     names[(i + 1) % 4]: float(w[1])})
    s.set_cfg(float(rng.uniform(1.0, 5.0)), rescale=float(rng.uniform()))
    s.set_steps(int(rng.choice([1, 2])))
    s.set_seed(int(rng.integers(0, 2**31 - 1)))
    if i % 11 == 5:
      s.drop_context()
    s.next_block()
  assert len(s.log) == 50
  assert sizes() == compiled
  assert len({e["steps"] for e in s.log}) == 2
  assert s.performance().shape[1] == 50 * s.spec.geometry.block


def test_prompt_mix_is_the_weighted_mean(session_parts):
  s = make(session_parts)
  a, b = s._encode("a"), s._encode("b")
  np.testing.assert_allclose(s.mixed_tokens({"a": 3.0, "b": 1.0}),
                             0.75 * a + 0.25 * b, rtol=1e-6)


def test_dominant_prompt_change_drops_old_context(session_parts):
  s = make(session_parts, drop_frames=8)
  s.set_prompts({"a": 1.0})
  for _ in range(3):
    s.next_block()
  assert np.abs(np.asarray(s.state.context)[:, :8]).max() > 0
  s.set_prompts({"a": 0.6, "b": 0.4})          # same dominant: keep
  assert np.abs(np.asarray(s.state.context)[:, :8]).max() > 0
  s.set_prompts({"a": 0.4, "b": 0.6})          # new dominant: drop
  np.testing.assert_array_equal(np.asarray(s.state.context)[:, :8], 0.0)
  assert np.abs(np.asarray(s.state.context)[:, 8:]).max() > 0


def test_restored_session_continues_exactly(session_parts, tmp_path):
  s = make(session_parts)
  s.set_prompts({"a": 1.0})
  s.set_cfg(2.0)
  for _ in range(2):
    s.next_block()
  s.crossfade_to({"b": 1.0}, blocks=3)
  s.next_block()
  s.save(str(tmp_path / "perf.npz"))
  expect = [s.next_block() for _ in range(3)]
  r = make(session_parts)
  r.load(str(tmp_path / "perf.npz"))
  got = [r.next_block() for _ in range(3)]
  for a, b in zip(expect, got):
    np.testing.assert_array_equal(a, b)


def test_session_saved_before_the_rejected_count_loads(session_parts,
                                                       tmp_path):
  """A file written before StreamState had `rejected` (the field removed
  from its state blob) loads, continues exactly, and counts from zero."""
  import flax
  s = make(session_parts)
  s.set_prompts({"a": 1.0})
  s.next_block()
  path = str(tmp_path / "old.npz")
  s.save(path)
  with np.load(path) as z:
    files = {k: np.asarray(z[k]) for k in z.files}
  state = flax.serialization.msgpack_restore(bytes(files["state"]))
  del state["rejected"]
  files["state"] = np.frombuffer(flax.serialization.msgpack_serialize(state),
                                 np.uint8)
  np.savez(path, **files)
  expect = s.next_block()
  r = make(session_parts)
  r.load(path)
  assert int(r.state.rejected) == 0
  np.testing.assert_array_equal(r.next_block(), expect)


def test_session_rejects_bad_controls(session_parts):
  spec, params = session_parts
  s = make(session_parts)
  with pytest.raises(ValueError, match="not compiled"):
    s.set_steps(8)
  with pytest.raises(ValueError, match=r"weight of 'a' must be in \[0, "):
    s.set_prompts({"a": -1.0})
  with pytest.raises(ValueError, match="rescale"):
    s.set_cfg(3.0, rescale=2.0)
  with pytest.raises(ValueError, match=r"expected \(5, 24\)"):
    LiveSession(params, spec, lambda t: np.zeros((3, 3)),
                steps_options=(2,)).set_prompts({"x": 1.0})


def test_ping_pong_plus_plus_session(session_parts):
  """A Ping-Pong++ session (`lmdm live --plus-plus`): the CFG++ weight
  changes between blocks without compiling, and the blocks differ from
  plain CFG at the same weight."""
  spec, params = session_parts
  pp = LiveSession(params, spec.replace(plus_plus=True), fake_encoder(spec),
                   steps_options=(1, 2))
  plain = make(session_parts)
  compiled = {k: st._block._cache_size() for k, st in pp.streams.items()}
  outs = []
  for s in (pp, plain):
    s.set_prompts({"ragtime": 1.0})
    s.set_cfg(0.7)
    outs.append(s.next_block())
  assert not np.allclose(outs[0], outs[1])
  pp.set_cfg(0.3)
  assert np.isfinite(pp.next_block()).all()
  assert {k: st._block._cache_size() for k, st in pp.streams.items()} == (
      compiled)


def test_prime_restarts_from_given_context(session_parts):
  """prime(context) restarts the stream from that context under the
  current controls: the same blocks each time, the given context in the
  state, the block counter at 0, nothing compiled."""
  spec, _ = session_parts
  rng = np.random.default_rng(3)
  shape = (1, spec.geometry.context, spec.model.io_channels)
  ctx = rng.normal(size=shape).astype(np.float32)
  s = make(session_parts, seed=4)
  s.set_prompts({"bach chorale": 1.0})
  compiled = {k: st._block._cache_size() for k, st in s.streams.items()}
  s.prime(ctx)
  np.testing.assert_array_equal(np.asarray(s.state.context), ctx)
  assert int(s.state.block) == 0
  first = [s.next_block() for _ in range(2)]
  s.prime(ctx)
  again = [s.next_block() for _ in range(2)]
  np.testing.assert_array_equal(np.asarray(first), np.asarray(again))
  s.prime(rng.normal(size=shape).astype(np.float32))
  assert not np.allclose(s.next_block(), first[0])
  assert {k: st._block._cache_size() for k, st in s.streams.items()} == (
      compiled)
  with pytest.raises(ValueError, match="context has shape"):
    s.prime(ctx[:, 1:])
