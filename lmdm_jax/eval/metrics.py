"""Distribution metrics on musicnn outputs: Fréchet distance, KL, drift.

Everything here is numpy/scipy on arrays (float64 internally), so it can be
tested on synthetic data with known answers (tests/eval/test_eval_metrics.py).

Fréchet distance (FD) between Gaussian fits N(mu_1, S_1), N(mu_2, S_2) of
two embedding sets (rows = patches):
  FD = |mu_1 - mu_2|^2 + tr S_1 + tr S_2 - 2 tr (S_1 S_2)^(1/2)
with unbiased covariances (ddof = 1). The trace of the matrix square root
is computed as sum_i sqrt(lambda_i(S_1^(1/2) S_2 S_1^(1/2))): that matrix
is symmetric positive semi-definite and has the eigenvalues of S_1 S_2,
so `eigh` gives real, non-negative values (tiny negative round-off is
clipped) without the complex detours of sqrtm on the non-symmetric
product. `method="sqrtm"` does the pytorch-fid computation instead
(scipy.linalg.sqrtm(S_1 S_2), offset by eps * I if not finite, imaginary
part dropped if below 1e-3 and an error otherwise); the two agree.
With fewer patches than embedding dimensions the covariances are rank
deficient: FD is still defined but biased upwards and noisy, compare like
with like (same number of patches).

KL divergence on tags (convention of audiocraft / stable-audio-metrics,
which use KL between tag distributions, eps inside the log):
  per file   the mean over its patches of musicnn's sigmoid tag
             probabilities, normalised to sum 1 over the 50 tags
  per set    the mean of its files' distributions
  KL(P || Q) = sum_k P_k (log P_k - log(Q_k + eps)), eps = 1e-6,
             0 log 0 = 0, with P the REFERENCE and Q the GENERATED
             distribution: large when generations miss tags the reference
             has. Set-level: KL(ref set || generated set). Paired (files
             with the same name up to the extension in both directories,
             as in those tools):
             the mean over pairs of KL(ref_i || gen_i).

Drift over time (the paper's Figure 4): for consecutive windows of
`window_seconds` of the generated files (a patch belongs to the window
holding its centre), FD of all generated patches in the window against
the whole reference set, and KL(reference set || window), where a file's
distribution in a window averages only its patches in that window.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

KL_EPS = 1e-6


def gaussian_stats(x) -> Tuple[np.ndarray, np.ndarray]:
  """Embeddings [N, D] -> (mean [D], unbiased covariance [D, D]), float64.

  ValueError for N < 2 (no covariance) or non-finite values."""
  x = np.asarray(x, np.float64)
  if x.ndim != 2:
    raise ValueError(f"embeddings must be [N, D], got shape {x.shape}")
  if x.shape[0] < 2:
    raise ValueError(f"need at least 2 embeddings for a covariance, got "
                     f"{x.shape[0]}")
  if not np.isfinite(x).all():
    raise ValueError("embeddings hold NaN or inf")
  return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False, ddof=1))


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
  w, v = np.linalg.eigh((s + s.T) / 2)
  return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray,
                       method: str = "eigh", eps: float = 1e-6) -> float:
  """tr((S_1 S_2)^(1/2)) for symmetric PSD S_1, S_2 (see module doc)."""
  s1 = np.asarray(s1, np.float64)
  s2 = np.asarray(s2, np.float64)
  if method == "eigh":
    r = _psd_sqrt(s1)
    m = r @ s2 @ r
    w = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(w, 0.0, None)).sum())
  if method == "sqrtm":
    import scipy.linalg
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
      off = np.eye(s1.shape[0]) * eps
      covmean = scipy.linalg.sqrtm((s1 + off) @ (s2 + off))
    if np.iscomplexobj(covmean):
      imag = np.abs(covmean.imag).max()
      if imag > 1e-3:
        raise ValueError(f"sqrtm has an imaginary part of {imag:.3g}; the "
                         "covariances are badly conditioned (use eigh)")
      covmean = covmean.real
    return float(np.trace(covmean))
  raise ValueError(f"unknown method {method!r}; choose 'eigh' or 'sqrtm'")


def frechet_distance(mu1, sigma1, mu2, sigma2, method: str = "eigh") -> float:
  """FD between N(mu1, sigma1) and N(mu2, sigma2); >= 0 (round-off below
  zero is clipped)."""
  mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(
      np.asarray(mu2, np.float64))
  sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
  d = mu1.shape[0]
  for name, a, shape in (("mu2", mu2, (d,)), ("sigma1", sigma1, (d, d)),
                         ("sigma2", sigma2, (d, d))):
    if a.shape != shape:
      raise ValueError(f"{name} must have shape {shape} (mu1 has {d} "
                       f"dimensions), got {a.shape}")
  diff = mu1 - mu2
  fd = (diff @ diff + np.trace(sigma1) + np.trace(sigma2)
        - 2.0 * trace_sqrt_product(sigma1, sigma2, method))
  return float(max(fd, 0.0))


def frechet_distance_embeddings(x, y, method: str = "eigh") -> float:
  """FD between the Gaussian fits of embedding sets x [N, D], y [M, D]."""
  x, y = np.asarray(x), np.asarray(y)
  if x.ndim == 2 and y.ndim == 2 and x.shape[1] != y.shape[1]:
    raise ValueError(f"embedding sizes differ: {x.shape[1]} vs {y.shape[1]}")
  return frechet_distance(*gaussian_stats(x), *gaussian_stats(y),
                          method=method)


def normalise(p, axis: int = -1) -> np.ndarray:
  """Non-negative scores -> distributions summing to 1 along `axis`."""
  p = np.asarray(p, np.float64)
  if (p < 0).any() or not np.isfinite(p).all():
    raise ValueError("tag probabilities must be finite and >= 0")
  s = p.sum(axis=axis, keepdims=True)
  if (s <= 0).any():
    raise ValueError("a tag-probability vector sums to 0")
  return p / s


def kl_divergence(p, q, eps: float = KL_EPS) -> np.ndarray:
  """KL(P || Q) over the last axis after normalising both to sum 1:
  sum P log P - P log(Q + eps) (0 log 0 = 0). p, q [..., K] -> [...]."""
  from scipy.special import xlogy
  p, q = normalise(p), normalise(q)
  if p.shape[-1] != q.shape[-1]:
    raise ValueError(f"tag counts differ: {p.shape[-1]} vs {q.shape[-1]}")
  return (xlogy(p, p) - p * np.log(q + eps)).sum(axis=-1)


def file_distribution(taggram) -> np.ndarray:
  """A file's taggram [P, K] -> its tag distribution [K] (mean over
  patches, normalised)."""
  t = np.asarray(taggram, np.float64)
  if t.ndim != 2 or t.shape[0] == 0:
    raise ValueError(f"taggram must be [patches >= 1, tags], got {t.shape}")
  return normalise(t.mean(axis=0))


def set_distribution(taggrams: Sequence[np.ndarray]) -> np.ndarray:
  """Mean of the files' tag distributions [K]."""
  if len(taggrams) == 0:
    raise ValueError("no files")
  return np.mean([file_distribution(t) for t in taggrams], axis=0)


def set_kl(ref_taggrams: Sequence[np.ndarray],
           gen_taggrams: Sequence[np.ndarray], eps: float = KL_EPS) -> float:
  """KL(reference set || generated set) of the set tag distributions."""
  return float(kl_divergence(set_distribution(ref_taggrams),
                             set_distribution(gen_taggrams), eps))


def paired_kl(ref: Dict[str, np.ndarray], gen: Dict[str, np.ndarray],
              eps: float = KL_EPS) -> Tuple[Optional[float], int]:
  """Mean over names in both dicts of KL(ref_i || gen_i) -> (kl or None,
  number of pairs)."""
  names = sorted(set(ref) & set(gen))
  if not names:
    return None, 0
  kls = [kl_divergence(file_distribution(ref[n]), file_distribution(gen[n]),
                       eps) for n in names]
  return float(np.mean(kls)), len(names)


def drift(gen: Sequence[Dict[str, np.ndarray]], ref_embeddings: np.ndarray,
          ref_taggrams: Sequence[np.ndarray], window_seconds: float,
          patch_seconds: float, eps: float = KL_EPS,
          method: str = "eigh") -> List[dict]:
  """FD and KL over consecutive windows of the generated files.

  gen: per file {'embeddings' [P, D], 'taggram' [P, K], 'starts' [P]
  (seconds)}. Window w covers [w S, (w + 1) S) of every file; a patch
  counts in the window holding its centre (start + patch_seconds / 2).
  -> one dict per window up to the last one holding a patch: window,
  start_s, end_s, files, patches, fd (None below 2 patches), kl.
  """
  if not window_seconds > 0:
    raise ValueError(f"window_seconds must be > 0, got {window_seconds}")
  ref_stats = gaussian_stats(ref_embeddings)
  ref_dist = set_distribution(ref_taggrams)
  idx = []
  for f in gen:
    centres = np.asarray(f["starts"], np.float64) + patch_seconds / 2
    idx.append(np.floor(centres / window_seconds).astype(int))
  n_windows = 1 + max((int(i.max()) for i in idx if len(i)), default=-1)
  out = []
  for w in range(n_windows):
    emb, dists = [], []
    for f, i in zip(gen, idx):
      sel = i == w
      if sel.any():
        emb.append(np.asarray(f["embeddings"])[sel])
        dists.append(file_distribution(np.asarray(f["taggram"])[sel]))
    n = int(sum(len(e) for e in emb))
    row = {"window": w, "start_s": w * window_seconds,
           "end_s": (w + 1) * window_seconds, "files": len(emb),
           "patches": n, "fd": None, "kl": None}
    if n >= 2:
      row["fd"] = frechet_distance(*ref_stats,
                                   *gaussian_stats(np.concatenate(emb)),
                                   method=method)
    if dists:
      row["kl"] = float(kl_divergence(ref_dist, np.mean(dists, axis=0), eps))
    out.append(row)
  return out
