"""Precision, recall, density and coverage (Naeem et al. 2020), k-NN manifolds in feature space.

With real features R (n), fake features F (m), Euclidean distances d, and ``r_k(x)`` the
distance from x to its k-th nearest neighbour within its own set (itself excluded)::

    precision = 1/m sum_j [exists i: d(R_i, F_j) < r_k(R_i)]
    recall    = 1/n sum_i [exists j: d(R_i, F_j) < r_k(F_j)]
    density   = 1/(k m) sum_j sum_i [d(R_i, F_j) < r_k(R_i)]
    coverage  = 1/n sum_i [min_j d(R_i, F_j) < r_k(R_i)]

as the authors' ``prdc`` package (k = 5, features = VGG16 fc2). Computed in float64 on the host
in row blocks, so memory is O(block x max(n, m)) rather than O(n m).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def _sq_norms(x: np.ndarray) -> np.ndarray:
  return np.einsum("ij,ij->i", x, x)


def _distances(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
  """Euclidean distances (len(a), len(b)) via ``|a|^2 + |b|^2 - 2 a.b`` clipped at 0."""
  sq = _sq_norms(a)[:, None] + b_sq[None, :] - 2.0 * (a @ b.T)
  return np.sqrt(np.maximum(sq, 0.0))


def knn_radii(x: np.ndarray, k: int, block: int = 1024) -> np.ndarray:
  """Distance from each row of x to its k-th nearest other row, (n,): the (k+1)-th smallest
  distance counting the row itself (distance 0)."""
  x = np.asarray(x, np.float64)
  if x.shape[0] <= k:
    raise ValueError(f"k={k} nearest neighbours need more than {k} items, got {x.shape[0]}")
  x_sq = _sq_norms(x)
  out = np.empty(x.shape[0])
  for s in range(0, x.shape[0], block):
    d = _distances(x[s:s + block], x, x_sq)
    out[s:s + block] = np.partition(d, k, axis=1)[:, k]
  return out


def prdc(real_features: Any, fake_features: Any, nearest_k: int = 5,
         block: int = 1024) -> dict[str, float]:
  """``{"precision", "recall", "density", "coverage"}`` of fake vs real (n, dim) features."""
  real = np.asarray(real_features, np.float64)
  fake = np.asarray(fake_features, np.float64)
  r_real = knn_radii(real, nearest_k, block)
  r_fake = knn_radii(fake, nearest_k, block)
  fake_sq = _sq_norms(fake)
  in_real = np.zeros(fake.shape[0], bool)        # precision hits per fake
  density_counts = np.zeros(fake.shape[0])
  in_fake = np.zeros(real.shape[0], bool)        # recall hits per real
  covered = np.zeros(real.shape[0], bool)
  for s in range(0, real.shape[0], block):
    d = _distances(real[s:s + block], fake, fake_sq)           # (b, m)
    inside_real_ball = d < r_real[s:s + block, None]
    in_real |= inside_real_ball.any(axis=0)
    density_counts += inside_real_ball.sum(axis=0)
    in_fake[s:s + block] = (d < r_fake[None, :]).any(axis=1)
    covered[s:s + block] = d.min(axis=1) < r_real[s:s + block]
  return {
      "precision": float(in_real.mean()),
      "recall": float(in_fake.mean()),
      "density": float(density_counts.mean() / nearest_k),
      "coverage": float(covered.mean()),
  }
