"""SpatialGAN heatmaps: sampling statistics against the EqGAN-SA constants, rendering, edits."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxspatial.models import heatmaps as hm

N = 20_000


def _clipped_normal_std(std: float, clamp: float) -> float:
  """Std of N(0, std^2) clipped to +-clamp (closed form)."""
  a = clamp / std
  phi = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
  tail = 0.5 * math.erfc(a / math.sqrt(2))
  var = std ** 2 * ((1 - 2 * tail) - 2 * a * phi) + 2 * clamp ** 2 * tail
  return math.sqrt(var)


@pytest.fixture(scope="module")
def hierarchical():
  return hm.sample(jax.random.key(0), N, "hierarchical").numpy()


def test_structure(hierarchical):
  h = hierarchical
  assert h.centers.shape == (N, 7, 2) and h.sigmas.shape == (N, 7)
  assert h.levels == (0, 1, 1, 2, 2, 2, 2)
  assert h.parents == (-1, 0, 0, 0, 0, 0, 0)
  assert [len(h.level_indices(l)) for l in range(3)] == [1, 2, 4]
  assert np.all(h.amplitudes == 1)


def test_root_centre_statistics(hierarchical):
  c = hierarchical.centers[:, 0]
  assert np.abs(c).max() <= hm.ROOT_CLAMP + 1e-6
  np.testing.assert_allclose(c.mean(0), 0.0, atol=0.01)
  np.testing.assert_allclose(c.std(0), _clipped_normal_std(0.33, 0.75), atol=0.006)
  clamped = np.mean(np.abs(c) >= hm.ROOT_CLAMP - 1e-6)
  np.testing.assert_allclose(clamped, math.erfc(0.75 / 0.33 / math.sqrt(2)), atol=0.005)
  assert np.corrcoef(c[:, 0], c[:, 1])[0, 1] < 0.03


@pytest.mark.parametrize("level,half,div", [(1, 0.4, 1.4), (2, 0.8, 2.0)])
def test_child_offsets_and_sigmas(hierarchical, level, half, div):
  h = hierarchical
  idx = list(h.level_indices(level))
  off = h.centers[:, idx] - h.centers[:, :1]
  assert off.min() >= -half - 1e-6 and off.max() <= half + 1e-6
  np.testing.assert_allclose(off.mean(), 0.0, atol=0.01)
  np.testing.assert_allclose(off.std(), half / math.sqrt(3), atol=0.005)   # uniform(-a, a)
  s = h.sigmas[:, idx]
  lo, hi = 0.1 / div, 1.1 / div
  assert s.min() >= lo - 1e-6 and s.max() <= hi + 1e-6
  np.testing.assert_allclose(s.mean(), (lo + hi) / 2, atol=0.01)
  np.testing.assert_allclose(s.std(), (hi - lo) / math.sqrt(12), atol=0.005)


def test_root_sigma(hierarchical):
  s = hierarchical.sigmas[:, 0]
  assert s.min() >= 0.5 and s.max() <= 1.0
  np.testing.assert_allclose(s.mean(), 0.75, atol=0.01)


def test_independent_and_multi_sampling():
  ind = hm.sample(jax.random.key(1), N, "independent").numpy()
  assert ind.parents == (-1,) * 7
  c = ind.centers
  assert np.abs(c).max() <= hm.ROOT_CLAMP + 1e-6
  np.testing.assert_allclose(c.std(0), _clipped_normal_std(0.33, 0.75), atol=0.01)
  assert abs(np.corrcoef(c[:, 0, 0], c[:, 3, 0])[0, 1]) < 0.03   # no parent link
  multi = hm.sample(jax.random.key(2), N, "multi", num_objects=3).numpy()
  assert multi.levels == (0, 0, 0) and multi.parents == (-1, -1, -1)
  np.testing.assert_allclose(multi.centers.std((0, 1)), _clipped_normal_std(0.5, 0.75),
                             atol=0.006)
  assert multi.sigmas.min() >= 0.5 and multi.sigmas.max() <= 1.0


def test_rows_do_not_depend_on_batch_size():
  a = hm.sample(jax.random.key(3), 3).numpy()
  b = hm.sample(jax.random.key(3), 8).numpy()
  np.testing.assert_array_equal(a.centers, b.centers[:3])


def test_render_matches_formula():
  h = hm.from_centers([[[0.2, -0.5], [-1.0, 1.0]]], [[0.3, 0.7]])
  for res in (4, 7, 32):
    maps = np.asarray(h.maps(res))
    g = 2 * np.arange(res) / (res - 1) - 1
    yy, xx = np.meshgrid(g, g, indexing="ij")
    for k, ((cy, cx), s) in enumerate(zip(h.centers[0], h.sigmas[0])):
      want = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / s) + 0.01
      np.testing.assert_allclose(maps[0, :, :, k], want, rtol=1e-5, atol=1e-6)
  corner = np.asarray(h.maps(9))[0, 0, -1, 1]      # centre (-1, 1) is the top-right pixel
  np.testing.assert_allclose(corner, 1.01, rtol=1e-6)


def test_edits_change_only_what_they_name(hierarchical):
  h = hierarchical.take(slice(0, 5))
  moved = h.move(3, 0.1, -0.2)
  d = moved.centers - h.centers
  np.testing.assert_allclose(d[:, 3], np.broadcast_to([0.1, -0.2], (5, 2)), atol=1e-6)
  assert np.all(np.delete(d, 3, axis=1) == 0)
  assert np.all(moved.sigmas == h.sigmas) and np.all(moved.amplitudes == h.amplitudes)

  root = h.move(0, 0.3, 0.1)   # a root drags its derived centres along
  np.testing.assert_allclose(root.centers - h.centers,
                             np.broadcast_to([0.3, 0.1], (5, 7, 2)), atol=1e-6)
  alone = h.move(0, 0.3, 0.1, with_children=False)
  assert np.all((alone.centers - h.centers)[:, 1:] == 0)

  per_sample = h.move(2, np.arange(5.0), 0.0)
  np.testing.assert_allclose((per_sample.centers - h.centers)[:, 2, 0], np.arange(5.0))

  removed = h.remove(1)
  assert np.all(removed.amplitudes[:, 1] == 0)
  assert np.all(np.delete(removed.amplitudes, 1, 1) == 1)
  assert np.all(removed.centers == h.centers) and np.all(removed.sigmas == h.sigmas)
  np.testing.assert_allclose(np.asarray(removed.maps(8))[..., 1], 0.01)

  scaled = h.scale(4, 2.0)
  np.testing.assert_allclose(scaled.sigmas[:, 4], 2 * h.sigmas[:, 4])
  assert np.all(np.delete(scaled.sigmas, 4, 1) == np.delete(h.sigmas, 4, 1))
  assert np.all(scaled.centers == h.centers)
  assert isinstance(scaled.sigmas, np.ndarray) and isinstance(moved.centers, np.ndarray)
  with pytest.raises(IndexError):
    h.remove(7)


def test_pytree_and_jit():
  h = hm.sample(jax.random.key(4), 2)
  leaves, tree = jax.tree.flatten(h)
  assert len(leaves) == 3 and all(l.shape[0] == 2 for l in leaves)

  @jax.jit
  def f(h):
    return h.move(0, 0.5, 0.0).scale(1, 0.5).remove(2).level_maps(1, 8)

  out = f(h)
  assert out.shape == (2, 8, 8, 2)
  want = h.numpy().move(0, 0.5, 0.0).scale(1, 0.5).remove(2).level_maps(1, 8)
  np.testing.assert_allclose(np.asarray(out), np.asarray(want), rtol=1e-6)
  grad = jax.grad(lambda c: jnp.sum(h.replace(centers=c).maps(8)))(h.centers)
  assert np.all(np.isfinite(np.asarray(grad)))
