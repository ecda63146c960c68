"""FD, KL and drift on synthetic data with known answers (no audio)."""
import numpy as np
import pytest

from lmdm_jax.eval import metrics as M


def _closed_form_isotropic(mu, s, d):
  """FD(N(0, I_d), N(mu, s^2 I_d)) = |mu|^2 + d (1 - s)^2."""
  return float(np.sum(np.square(mu)) + d * (1 - s) ** 2)


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_fd_exact_gaussians(method):
  d = 16
  mu = np.linspace(-1, 1, d)
  for s in (0.5, 1.0, 3.0):
    got = M.frechet_distance(np.zeros(d), np.eye(d), mu, s * s * np.eye(d),
                             method=method)
    assert got == pytest.approx(_closed_form_isotropic(mu, s, d), rel=1e-10)
  # Commuting (diagonal) covariances: sum (sqrt a - sqrt b)^2.
  a, b = np.arange(1.0, d + 1), np.linspace(0.1, 5, d)
  want = float(np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))
  assert M.frechet_distance(np.zeros(d), np.diag(a), np.zeros(d),
                            np.diag(b), method=method) == pytest.approx(
                                want, rel=1e-9)
  # Same distribution: 0.
  assert M.frechet_distance(mu, np.diag(a), mu, np.diag(a),
                            method=method) == pytest.approx(0, abs=1e-9)


def test_fd_methods_agree_on_random_covariances():
  rng = np.random.default_rng(0)
  d = 24
  for _ in range(3):
    x, y = rng.normal(size=(d, d)), rng.normal(size=(d, 2 * d))
    s1, s2 = x @ x.T / d + 0.1 * np.eye(d), y @ y.T / (2 * d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    e = M.frechet_distance(mu1, s1, mu2, s2, method="eigh")
    q = M.frechet_distance(mu1, s1, mu2, s2, method="sqrtm")
    assert e == pytest.approx(q, rel=1e-8)
    # Symmetric in its arguments.
    assert M.frechet_distance(mu2, s2, mu1, s1) == pytest.approx(e, rel=1e-8)


def test_fd_from_samples_converges_to_closed_form():
  rng = np.random.default_rng(1)
  d, n, s = 4, 40000, 2.0
  mu = np.array([1.0, 0.0, -0.5, 2.0])
  x = rng.normal(size=(n, d))
  y = mu + s * rng.normal(size=(n, d))
  want = _closed_form_isotropic(mu, s, d)                # 9.25
  assert M.frechet_distance_embeddings(x, y) == pytest.approx(want, abs=0.1)
  mu_x, sig_x = M.gaussian_stats(x)
  np.testing.assert_allclose(sig_x, np.cov(x.T), rtol=1e-12)


def test_fd_rank_deficient_is_finite():
  """Fewer samples than dimensions (singular covariances): still defined,
  non-negative; eigh needs no regularisation."""
  rng = np.random.default_rng(2)
  x, y = rng.normal(size=(5, 50)), rng.normal(size=(7, 50)) + 1.0
  fd = M.frechet_distance_embeddings(x, y)
  assert np.isfinite(fd) and fd > 0
  assert M.frechet_distance_embeddings(x, x) == pytest.approx(0, abs=1e-8)


def test_fd_bad_inputs():
  with pytest.raises(ValueError, match="at least 2 embeddings"):
    M.gaussian_stats(np.zeros((1, 3)))
  with pytest.raises(ValueError, match=r"must be \[N, D\]"):
    M.gaussian_stats(np.zeros(3))
  with pytest.raises(ValueError, match="NaN or inf"):
    M.gaussian_stats(np.array([[0.0, np.nan], [1.0, 2.0]]))
  with pytest.raises(ValueError, match="embedding sizes differ"):
    M.frechet_distance_embeddings(np.zeros((3, 2)), np.zeros((3, 4)))
  with pytest.raises(ValueError, match="sigma2 must have shape"):
    M.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(3))
  with pytest.raises(ValueError, match="unknown method"):
    M.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2),
                       method="svd")


def test_kl_known_values():
  p, q = np.array([0.5, 0.5]), np.array([0.9, 0.1])
  want = 0.5 * np.log(0.5 / 0.9) + 0.5 * np.log(0.5 / 0.1)     # 0.5108
  # eps = 1e-6 sits inside log Q only: exact value, and 5e-6 from the
  # eps-free KL.
  exact = float(np.sum(p * np.log(p) - p * np.log(q + 1e-6)))
  assert float(M.kl_divergence(p, q)) == pytest.approx(exact, rel=1e-12)
  assert float(M.kl_divergence(p, q)) == pytest.approx(want, abs=1e-5)
  # Reverse direction differs (KL is not symmetric).
  rev = 0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5)       # 0.3681
  assert float(M.kl_divergence(q, p)) == pytest.approx(rev, abs=1e-5)
  # Inputs are normalised first; identical distributions give 0.
  assert float(M.kl_divergence(3 * p, 7 * q)) == pytest.approx(exact,
                                                                rel=1e-12)
  assert float(M.kl_divergence(q, q)) == pytest.approx(0, abs=1e-5)
  # 0 log 0 = 0 in P; eps bounds a zero in Q: log(1 / 1e-6).
  assert float(M.kl_divergence([1, 0], [0, 1])) == pytest.approx(
      np.log(1e6), rel=1e-6)
  assert float(M.kl_divergence([0, 1], [0.5, 0.5])) == pytest.approx(
      np.log(2), rel=1e-5)
  # Batched over leading axes.
  assert M.kl_divergence(np.stack([p, q]), np.stack([q, q])).shape == (2,)
  with pytest.raises(ValueError, match="sums to 0"):
    M.kl_divergence([0, 0], [1, 1])
  with pytest.raises(ValueError, match=">= 0"):
    M.kl_divergence([-1, 2], [1, 1])


def test_set_and_paired_kl_conventions():
  # Two reference files, one generated file; 2 tags.
  ref = [np.array([[0.8, 0.2], [0.6, 0.2]]),      # mean [.7, .2] -> [7/9, 2/9]
         np.array([[0.1, 0.1]])]                   # -> [.5, .5]
  gen = [np.array([[0.2, 0.6]])]                   # -> [.25, .75]
  p = (np.array([7 / 9, 2 / 9]) + np.array([0.5, 0.5])) / 2
  q = np.array([0.25, 0.75])
  want = float(np.sum(p * np.log(p / q)))
  assert M.set_kl(ref, gen) == pytest.approx(want, rel=1e-5)
  np.testing.assert_allclose(M.set_distribution(ref), p)
  kl, n = M.paired_kl({"a.wav": ref[0], "b.wav": ref[1]},
                      {"a.wav": gen[0], "c.wav": gen[0]})
  assert n == 1
  assert kl == pytest.approx(float(M.kl_divergence([7, 2], [1, 3])),
                             rel=1e-9)
  assert M.paired_kl({"a": ref[0]}, {"b": gen[0]}) == (None, 0)


def test_drift_windows_follow_a_distribution_shift():
  """A 'long file' whose embeddings and tags move away from the
  reference after 30 s: FD and KL rise from the window where it does."""
  rng = np.random.default_rng(3)
  d, ps = 8, 2.992
  ref_emb = rng.normal(size=(4000, d))
  ref_tags = [np.tile([[0.8, 0.1, 0.1]], (5, 1))] * 3
  gen = []
  for f in range(20):
    starts = np.arange(20) * ps                      # 59.8 s per file
    late = starts + ps / 2 >= 30
    emb = rng.normal(size=(20, d)) + 3.0 * late[:, None]
    tags = np.where(late[:, None], [[0.1, 0.1, 0.8]], [[0.8, 0.1, 0.1]])
    n = 20 - 3 * (f % 2)                               # ragged lengths
    gen.append({"embeddings": emb[:n], "taggram": tags[:n],
                "starts": starts[:n]})
  w = M.drift(gen, ref_emb, ref_tags, window_seconds=15.0, patch_seconds=ps)
  assert [r["window"] for r in w] == [0, 1, 2, 3]
  assert [r["start_s"] for r in w] == [0, 15, 30, 45]
  assert [r["end_s"] for r in w] == [15, 30, 45, 60]
  # Centres 1.5, 4.5, ..., 58.3 s: 5 patches in windows 0-2, 5 or 2 in 3.
  assert [r["patches"] for r in w] == [100, 100, 100, 70]
  assert all(r["files"] == 20 for r in w)
  early, latew = w[:2], w[2:]
  for r in early:
    assert r["fd"] < 1.0 and r["kl"] == pytest.approx(0, abs=1e-5)
  for r in latew:       # mean shift 3 in 8 dims: FD ~ 72
    assert r["fd"] == pytest.approx(72, rel=0.15)
    assert r["kl"] == pytest.approx(float(M.kl_divergence(
        [0.8, 0.1, 0.1], [0.1, 0.1, 0.8])), rel=1e-4)
  # A window with a single patch has a KL but no FD.
  one = M.drift([{"embeddings": np.zeros((1, d)), "taggram": np.ones((1, 3)),
                  "starts": np.zeros(1)}], ref_emb, ref_tags, 10.0, ps)
  assert one[0]["fd"] is None and one[0]["kl"] is not None
  with pytest.raises(ValueError, match="window_seconds must be > 0"):
    M.drift(gen, ref_emb, ref_tags, 0.0, ps)
