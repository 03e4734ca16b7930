"""Metric maths against closed forms and direct O(n^2) formulas: FID, KID, streaming stats,
PRDC, PPL and masked L1. No network weights needed."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from jaxspatial import metrics
from jaxspatial.metrics import fid, masked_l1, ppl, prdc
from jaxspatial.nets import features


def test_frechet_distance_matches_diagonal_closed_form():
  rng = np.random.default_rng(0)
  mu1, mu2 = rng.normal(size=16), rng.normal(size=16)
  v1, v2 = rng.uniform(0.1, 3, 16), rng.uniform(0.1, 3, 16)
  expected = np.sum((mu1 - mu2) ** 2) + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
  got = fid.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2))
  np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_frechet_distance_matches_scipy_sqrtm_on_full_covariances():
  rng = np.random.default_rng(1)
  a, b = rng.normal(size=(12, 12)), rng.normal(size=(12, 30))
  s1, s2 = a @ a.T + 0.1 * np.eye(12), b @ b.T / 30
  mu1, mu2 = rng.normal(size=12), rng.normal(size=12)
  root = scipy.linalg.sqrtm(s1 @ s2)
  expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * np.real(root))
  np.testing.assert_allclose(fid.frechet_distance(mu1, s1, mu2, s2), expected, rtol=1e-9)


def test_fid_between_gaussian_feature_sets():
  """Streaming stats reproduce np.mean/np.cov, and FID tends to the population closed form."""
  rng = np.random.default_rng(2)
  d, n = 8, 200_000
  mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
  v1, v2 = rng.uniform(0.2, 2, d), rng.uniform(0.2, 2, d)
  x = mu1 + np.sqrt(v1) * rng.standard_normal((n, d))
  y = mu2 + np.sqrt(v2) * rng.standard_normal((n, d))
  sx, sy = fid.FeatureStats(d), fid.FeatureStats(d)
  for i in range(0, n, 50_000):
    sx.append(x[i:i + 50_000])
    sy.append(y[i:i + 50_000])
  x32, y32 = x.astype(np.float32).astype(np.float64), y.astype(np.float32).astype(np.float64)
  np.testing.assert_allclose(sx.mean(), x32.mean(0), rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(sx.cov(), np.cov(x32, rowvar=False), rtol=1e-7, atol=1e-10)
  direct = fid.frechet_distance(x32.mean(0), np.cov(x32, rowvar=False),
                                y32.mean(0), np.cov(y32, rowvar=False))
  np.testing.assert_allclose(fid.fid_from_stats(sx, sy), direct, rtol=1e-8)
  closed = np.sum((mu1 - mu2) ** 2) + np.sum(v1 + v2 - 2 * np.sqrt(v1 * v2))
  np.testing.assert_allclose(fid.fid_from_stats(sx, sy), closed, rtol=2e-2)


def test_fid_of_a_set_against_itself_is_zero():
  feats = np.random.default_rng(3).normal(size=(500, 64)).astype(np.float32)
  s = fid.FeatureStats(64)
  s.append(feats)
  assert abs(fid.fid_from_stats(s, s)) < 1e-8


def test_feature_stats_chunking_merge_and_max_items():
  feats = np.random.default_rng(4).normal(size=(37, 5)).astype(np.float32)
  whole = fid.FeatureStats(5, keep_features=True)
  whole.append(feats)
  a, b = fid.FeatureStats(5, keep_features=True), fid.FeatureStats(5, keep_features=True)
  for i in range(0, 20, 3):
    a.append(feats[i:min(i + 3, 20)])
  b.append(feats[20:])
  merged = a.merge(b)
  assert merged.count == 37
  np.testing.assert_allclose(merged.mean(), whole.mean(), rtol=1e-12)
  np.testing.assert_allclose(merged.cov(), whole.cov(), rtol=1e-10, atol=1e-14)
  np.testing.assert_array_equal(merged.all_features(), feats)
  capped = fid.FeatureStats(5, max_items=10)
  for i in range(0, 37, 4):
    capped.append(feats[i:i + 4])
  assert capped.count == 10 and capped.is_full
  np.testing.assert_allclose(capped.mean(), feats[:10].astype(np.float64).mean(0), rtol=1e-12)


def _toy_feature_fn(mesh):
  """A small conv net through the same sharded batching path as the metric networks."""
  kernel = jnp.asarray(np.random.default_rng(0).normal(size=(3, 3, 3, 16)) / 5, jnp.float32)

  @jax.jit
  def fn(params, x):
    h = jax.lax.conv_general_dilated(x, params, (2, 2), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                     precision=jax.lax.Precision.HIGHEST)
    return jnp.mean(jax.nn.relu(h), axis=(1, 2))

  def features_of(batch, batch_size):
    return features.run_batched(fn, kernel, (np.asarray(batch, np.float32),),
                                batch_size=batch_size, mesh=mesh)
  return features_of


def test_streaming_stats_identical_for_batch_sizes_and_device_counts():
  images = np.tanh(np.random.default_rng(5).normal(size=(23, 16, 16, 3))).astype(np.float32)
  one = metrics.data_mesh(jax.devices()[:1])
  eight = metrics.data_mesh()
  assert eight.devices.size == jax.device_count() == 8
  runs = []
  for mesh, chunk, batch in [(one, 5, 3), (eight, 23, 8), (eight, 7, 16)]:
    fn = functools.partial(_toy_feature_fn(mesh), batch_size=batch)
    batches = (images[i:i + chunk] for i in range(0, 23, chunk))
    runs.append(fid.compute_feature_stats(batches, fn, dim=16, keep_features=True))
  ref = runs[0]
  for other in runs[1:]:
    assert other.count == ref.count == 23
    np.testing.assert_allclose(other.all_features(), ref.all_features(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(other.mean(), ref.mean(), rtol=1e-6)
    np.testing.assert_allclose(other.cov(), ref.cov(), rtol=1e-5, atol=1e-9)
    assert abs(fid.fid_from_stats(ref, other)) < 1e-6


def test_cached_stats_computes_once(tmp_path, monkeypatch):
  monkeypatch.setenv("JAXSPATIAL_HOME", str(tmp_path))
  calls = []

  def compute():
    calls.append(1)
    s = fid.FeatureStats(3, keep_features=True)
    s.append(np.arange(12, dtype=np.float32).reshape(4, 3))
    return s

  key = fid.stats_key("shapes/64", source="shapes", resolution=64, num=4)
  assert "/" not in key
  first = fid.cached_stats(key, compute)
  second = fid.cached_stats(key, compute)
  assert calls == [1] and fid.stats_path(key).is_file()
  np.testing.assert_array_equal(second.total_outer, first.total_outer)
  np.testing.assert_array_equal(second.all_features(), first.all_features())
  assert fid.stats_key("a", x=1) != fid.stats_key("a", x=2)


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
  """Direct double loops over pairs with k(a, b) = (a.b/d + 1)^3."""
  d, m = x.shape[1], x.shape[0]

  def k(a, b):
    return (a @ b / d + 1) ** 3
  xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
  xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
  return xx + yy - 2 * xy


def test_kid_matches_direct_unbiased_mmd():
  rng = np.random.default_rng(6)
  x, y = rng.normal(size=(30, 4)), rng.normal(0.3, 1.2, size=(30, 4))
  got = fid.kid(x, y, num_subsets=1, max_subset_size=1000)   # one subset = the full sets
  np.testing.assert_allclose(got, _mmd2_unbiased(x, y), rtol=1e-10)


def test_kid_near_zero_for_identical_distributions():
  rng = np.random.default_rng(7)
  same = fid.kid(rng.normal(size=(400, 16)), rng.normal(size=(400, 16)), num_subsets=20,
                 max_subset_size=200)
  shifted = fid.kid(rng.normal(size=(400, 16)), rng.normal(0.5, 1, size=(400, 16)),
                    num_subsets=20, max_subset_size=200)
  assert abs(same) < 0.02 * shifted and shifted > 0


def _prdc_direct(real: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
  """Naeem et al.'s definitions written out with full distance matrices and sorts."""
  def dist(a, b):
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
  r_real = np.sort(dist(real, real), axis=1)[:, k]
  r_fake = np.sort(dist(fake, fake), axis=1)[:, k]
  d = dist(real, fake)
  return {
      "precision": float(np.mean([(d[:, j] < r_real).any() for j in range(len(fake))])),
      "recall": float(np.mean([(d[i] < r_fake).any() for i in range(len(real))])),
      "density": float(np.mean([(d[:, j] < r_real).sum() for j in range(len(fake))]) / k),
      "coverage": float(np.mean([d[i].min() < r_real[i] for i in range(len(real))])),
  }


@pytest.mark.parametrize("shift", [0.0, 0.7])
def test_prdc_matches_direct_implementation(shift):
  rng = np.random.default_rng(8)
  real = rng.normal(size=(70, 6))
  fake = rng.normal(shift, 1.1, size=(55, 6))
  got = prdc.prdc(real, fake, nearest_k=5, block=16)
  assert got == pytest.approx(_prdc_direct(real, fake, 5), abs=1e-12)


def test_slerp_and_lerp():
  rng = np.random.default_rng(9)
  a, b = rng.normal(size=(5, 7)), rng.normal(size=(5, 7))
  unit = lambda v: v / np.linalg.norm(v, axis=-1, keepdims=True)  # noqa: E731
  np.testing.assert_allclose(ppl.slerp(a, b, np.zeros((5, 1))), unit(a), atol=1e-12)
  np.testing.assert_allclose(ppl.slerp(a, b, np.ones((5, 1))), unit(b), atol=1e-12)
  t = rng.uniform(size=(5, 1))
  mid = ppl.slerp(a, b, t)
  np.testing.assert_allclose(np.linalg.norm(mid, axis=-1), 1.0, rtol=1e-12)
  angle = lambda u, v: np.arccos(np.clip(np.sum(unit(u) * unit(v), -1), -1, 1))  # noqa: E731
  np.testing.assert_allclose(angle(a, mid), t[:, 0] * angle(a, b), rtol=1e-9)
  np.testing.assert_allclose(ppl.lerp(a, b, t), a + t * (b - a))


@pytest.mark.parametrize("space,sampling", [("w", "end"), ("w", "full"), ("z", "full")])
def test_ppl_against_analytic_path_lengths(space, sampling):
  """Linear G and squared-L2 'LPIPS': W-lerp gives |A(b - a)|^2 exactly; Z-slerp gives
  |A dslerp/dt|^2 = theta^2 |A c(t)|^2 with c the unit tangent."""
  rng = np.random.default_rng(10)
  mat = rng.normal(size=(6, 4 * 4 * 3)) / 4

  def generate(lat):
    return (lat @ mat).reshape(-1, 4, 4, 3)

  def sample(seed, n):
    r = np.random.default_rng(seed)
    return r.normal(size=(n, 6)), r.normal(size=(n, 6))

  def sq_l2(x, y):
    return np.sum((np.asarray(x, np.float64) - y) ** 2, axis=(1, 2, 3))

  got = ppl.path_distances(sample, generate, num_samples=10, batch_size=4, space=space,
                           sampling=sampling, epsilon=1e-3, seed=3, lpips_fn=sq_l2)
  expected = []
  for b, start in enumerate(range(0, 10, 4)):
    n = min(4, 10 - start)
    a0, a1 = sample(3 + b, n)
    if space == "w":
      expected.append(np.sum(((a1 - a0) @ mat) ** 2, axis=1))
    else:
      t = np.random.default_rng([3, b]).uniform(size=n)[:, None]
      u0, u1 = (v / np.linalg.norm(v, axis=1, keepdims=True) for v in (a0, a1))
      theta = np.arccos(np.sum(u0 * u1, 1, keepdims=True))
      c = u1 - np.sum(u0 * u1, 1, keepdims=True) * u0
      c /= np.linalg.norm(c, axis=1, keepdims=True)
      tangent = theta * (-u0 * np.sin(t * theta) + c * np.cos(t * theta))
      expected.append(np.sum((tangent @ mat) ** 2, axis=1))
  # float32 latents: ~1e-7 / eps relative; slerp adds the O(eps * theta) finite-difference bias.
  np.testing.assert_allclose(got, np.concatenate(expected), rtol=1e-3 if space == "w" else 1e-2)


def test_ppl_filtering_and_preprocessing():
  dist = np.arange(1.0, 201.0)
  lo, hi = np.percentile(dist, 1, method="lower"), np.percentile(dist, 99, method="higher")
  assert ppl.filtered_mean(dist) == pytest.approx(dist[(dist >= lo) & (dist <= hi)].mean())
  img = np.random.default_rng(11).normal(size=(2, 512, 512, 3))
  out = ppl.prepare_for_lpips(img, crop=False)
  np.testing.assert_allclose(out, img.reshape(2, 256, 2, 256, 2, 3).mean(axis=(2, 4)))
  cropped = ppl.prepare_for_lpips(img, crop=True)   # 256x256 crop: rows 192:448, cols 128:384
  np.testing.assert_array_equal(cropped, img[:, 192:448, 128:384])


def test_masked_l1():
  rng = np.random.default_rng(12)
  rec, tgt = rng.normal(size=(2, 8, 8, 3)), rng.normal(size=(2, 8, 8, 3))
  mask = (rng.uniform(size=(2, 8, 8, 1)) < 0.4).astype(np.float32)
  got = np.asarray(masked_l1.masked_l1(rec, tgt, mask))
  for i in range(2):
    keep = mask[i, ..., 0] > 0
    np.testing.assert_allclose(got[i], np.abs(rec[i] - tgt[i])[keep].mean(), rtol=1e-5)
