"""FID and KID from streaming feature statistics.

FID (Heusel et al. 2017) between Gaussians fitted to two feature sets::

    FID = ||mu_1 - mu_2||^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

with the unbiased covariance (``np.cov``, ddof 1) as pytorch-fid. The matrix square root's
trace is computed stably as ``sum_i sqrt(lambda_i(A S_2 A))`` with ``A = S_1^(1/2)`` (the
eigenvalues of ``A S_2 A`` are those of ``S_1 S_2``; it is symmetric PSD, so ``eigh`` applies).

KID (Binkowski et al. 2018) as stylegan2-ada / clean-fid: the unbiased MMD^2 with the cubic
polynomial kernel ``k(a, b) = (a.b / d + 1)^3``, averaged over ``num_subsets`` random subsets of
``m = min(n_1, n_2, max_subset_size)`` items from each set::

    MMD^2_u = 1/(m(m-1)) sum_{i!=j} [k(x_i,x_j) + k(y_i,y_j)] - 2/m^2 sum_{i,j} k(x_i,y_j)

:class:`FeatureStats` accumulates count, sum and the sum of outer products in float64 on the
host, so any number of images streams through without being held (features are kept only when
KID needs them); two stats merge by adding. Reference statistics are cached per dataset key as
``$JAXSPATIAL_HOME/stats/<key>.npz``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import pathlib
from typing import Any, Callable, Iterable

import numpy as np

from jaxspatial import cli
from jaxspatial.nets import weights


@dataclasses.dataclass
class FeatureStats:
  """Streaming first and second moments of (n, dim) features, float64.

  ``count`` items, ``total = sum_i f_i`` (dim,), ``total_outer = sum_i f_i f_i^T`` (dim, dim);
  ``features`` holds the float32 rows when ``keep_features`` (for KID). ``max_items`` caps the
  count: :meth:`append` keeps only the first rows that fit.
  """
  dim: int
  keep_features: bool = False
  max_items: int | None = None
  count: int = 0
  total: np.ndarray | None = None
  total_outer: np.ndarray | None = None
  features: list[np.ndarray] = dataclasses.field(default_factory=list)

  def __post_init__(self) -> None:
    if self.total is None:
      self.total = np.zeros(self.dim, np.float64)
    if self.total_outer is None:
      self.total_outer = np.zeros((self.dim, self.dim), np.float64)

  @property
  def is_full(self) -> bool:
    return self.max_items is not None and self.count >= self.max_items

  def append(self, feats: Any) -> None:
    """Adds (n, dim) features (truncated to ``max_items``)."""
    f = np.asarray(feats, np.float32)
    if f.ndim != 2 or f.shape[1] != self.dim:
      raise ValueError(f"expected (n, {self.dim}) features, got {f.shape}")
    if self.max_items is not None:
      f = f[:max(self.max_items - self.count, 0)]
    f64 = f.astype(np.float64)
    self.count += f.shape[0]
    self.total += f64.sum(axis=0)
    self.total_outer += f64.T @ f64
    if self.keep_features:
      self.features.append(f)

  def merge(self, other: FeatureStats) -> FeatureStats:
    """The statistics of both sets together (features concatenated when both keep them)."""
    if other.dim != self.dim:
      raise ValueError(f"cannot merge stats of dim {self.dim} and {other.dim}")
    keep = self.keep_features and other.keep_features
    return FeatureStats(self.dim, keep, None, self.count + other.count, self.total + other.total,
                        self.total_outer + other.total_outer,
                        self.features + other.features if keep else [])

  def mean(self) -> np.ndarray:
    """mu = total / n, (dim,) float64."""
    return self.total / self.count

  def cov(self) -> np.ndarray:
    """Unbiased covariance (dim, dim): ``(total_outer - n mu mu^T) / (n - 1)``."""
    if self.count < 2:
      raise ValueError(f"a covariance needs at least 2 items, got {self.count}")
    mu = self.mean()
    return (self.total_outer - self.count * np.outer(mu, mu)) / (self.count - 1)

  def all_features(self) -> np.ndarray:
    """The kept features (n, dim) float32."""
    if not self.keep_features:
      raise ValueError("these stats were collected without keep_features")
    return np.concatenate(self.features) if self.features else np.zeros((0, self.dim), np.float32)

  def save(self, path: str | os.PathLike) -> None:
    """Writes the stats (and kept features) to an ``.npz`` file atomically."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {"features": self.all_features()} if self.keep_features else {}
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
      np.savez(f, count=self.count, total=self.total, total_outer=self.total_outer, **extra)
    os.replace(tmp, path)

  @classmethod
  def load(cls, path: str | os.PathLike) -> FeatureStats:
    with np.load(path) as z:
      total = z["total"]
      keep = "features" in z.files
      return cls(total.shape[0], keep, None, int(z["count"]), total, z["total_outer"],
                 [z["features"]] if keep else [])


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
  """``||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 sum_i sqrt(lambda_i(S1^(1/2) S2 S1^(1/2)))``."""
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
  lam, vec = np.linalg.eigh((s1 + s1.T) / 2)
  root1 = (vec * np.sqrt(np.clip(lam, 0, None))) @ vec.T
  inner = root1 @ s2 @ root1
  tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum()
  return float(np.sum(np.square(mu1 - mu2)) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def fid_from_stats(a: FeatureStats, b: FeatureStats) -> float:
  """FID between the Gaussians fitted to two :class:`FeatureStats`."""
  return frechet_distance(a.mean(), a.cov(), b.mean(), b.cov())


def kid(features_a: np.ndarray, features_b: np.ndarray, *, num_subsets: int = 100,
        max_subset_size: int = 1000, seed: int = 0) -> float:
  """Mean unbiased MMD^2 (cubic polynomial kernel) over random subsets (stylegan2-ada's KID)."""
  a = np.asarray(features_a, np.float64)
  b = np.asarray(features_b, np.float64)
  d = a.shape[1]
  m = min(a.shape[0], b.shape[0], max_subset_size)
  if m < 2:
    raise ValueError(f"KID needs at least 2 items per set, got {a.shape[0]} and {b.shape[0]}")
  rng = np.random.default_rng(seed)
  t = 0.0
  for _ in range(num_subsets):
    x = a[rng.choice(a.shape[0], m, replace=False)]
    y = b[rng.choice(b.shape[0], m, replace=False)]
    k_xx_yy = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
    k_xy = (x @ y.T / d + 1) ** 3
    t += (k_xx_yy.sum() - np.trace(k_xx_yy)) / (m - 1) - k_xy.sum() * 2 / m
  return float(t / num_subsets / m)


def compute_feature_stats(batches: Iterable[Any], feature_fn: Callable[[Any], np.ndarray], *,
                          dim: int, max_items: int | None = None, keep_features: bool = False,
                          desc: str | None = None) -> FeatureStats:
  """Streams image batches (n, H, W, 3) through ``feature_fn`` -> (n, dim) features into
  :class:`FeatureStats`.

  Stops after ``max_items`` items (or when ``batches`` ends), with a progress bar on a terminal.
  """
  stats = FeatureStats(dim, keep_features, max_items)
  with cli.progress(total=max_items, desc=desc, unit="img") as bar:
    for batch in batches:
      if stats.is_full:
        break
      if max_items is not None:
        batch = batch[:max_items - stats.count]
      before = stats.count
      stats.append(feature_fn(batch))
      bar.update(stats.count - before)
  return stats


def stats_key(name: str, **fields: Any) -> str:
  """A file-safe cache key: ``<name>-<12 hex of sha1(sorted JSON of fields)>``."""
  blob = json.dumps(fields, sort_keys=True, default=str).encode()
  safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
  return f"{safe}-{hashlib.sha1(blob).hexdigest()[:12]}"


def stats_path(key: str) -> pathlib.Path:
  """``$JAXSPATIAL_HOME/stats/<key>.npz``."""
  return weights.home() / "stats" / f"{key}.npz"


def cached_stats(key: str, compute: Callable[[], FeatureStats]) -> FeatureStats:
  """The stats stored under ``key``, or ``compute()`` saved there first."""
  path = stats_path(key)
  if path.is_file():
    return FeatureStats.load(path)
  stats = compute()
  stats.save(path)
  return stats
