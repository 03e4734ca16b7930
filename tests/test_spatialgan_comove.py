"""Co-move ratio: the shapes locator against the dataset's ground truth, the ratio on known
motions, and the whole metric on stand-in models that do / do not follow their heatmaps."""

import jax
import numpy as np
import pytest

from jaxspatial.data.shapes import CLASS_NAMES, ShapesSource
from jaxspatial.metrics import comove
from jaxspatial.models import heatmaps as hm

COLOURS = np.asarray([[0.9, 0.1, 0.1], [0.1, 0.8, 0.1], [0.95, 0.9, 0.1]])


@pytest.mark.parametrize("resolution", [32, 64])
def test_shapes_locator_against_ground_truth(resolution):
  src = ShapesSource(resolution, max_objects=3, seed=0)
  locator = comove.ShapesLocator()
  ious, errors = [], []
  for i in range(60):
    ex = src[i]
    segments = locator.segments(ex["image"].astype(np.float32) / 127.5 - 1)
    for k in range(int(ex["num_objects"])):
      mask = ex["masks"][k].astype(bool)
      if CLASS_NAMES[ex["class_ids"][k]] == "tower" or mask.sum() < 6:
        continue      # towers are two colours: the locator finds roof and body apart
      best = max(segments, key=lambda s: (s.mask & mask).sum() / (s.mask | mask).sum())
      ious.append((best.mask & mask).sum() / (best.mask | mask).sum())
      errors.append(np.linalg.norm(best.centroid - np.argwhere(mask).mean(0)))
  ious, errors = np.asarray(ious), np.asarray(errors)
  assert len(ious) > 60
  assert np.median(ious) > (0.75 if resolution == 32 else 0.85)
  assert np.median(errors) < 0.6 and np.mean(errors < 1.5) > 0.85


def _scene(res, centres_px, colours=COLOURS, radius=None):
  """Sky/ground gradient with flat discs at ``centres_px``; float image in [-1, 1]."""
  radius = radius or res / 8
  rows = np.linspace(0, 1, res)[:, None, None]
  img = np.broadcast_to(0.6 + 0.3 * rows * np.asarray([[[-1.0, 0.2, 0.5]]]), (res, res, 3)).copy()
  yy, xx = np.mgrid[:res, :res]
  for (cy, cx), colour in zip(centres_px, colours):
    img[(yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2] = colour
  return (img * 2 - 1).astype(np.float32)


@pytest.mark.parametrize("fraction", [1.0, 0.5, 0.0, -1.0])
def test_ratio_on_known_motion(fraction):
  res, p = 64, np.asarray([6.0, -10.0])
  before = _scene(res, [(20, 40), (45, 15)])
  after = _scene(res, [(20 + fraction * 6, 40 - fraction * 10), (45, 15)])
  r = comove.ratio(comove.ShapesLocator(), before, after, np.asarray([21.0, 39.0]), p)
  np.testing.assert_allclose(r, fraction, atol=0.05)
  assert comove.ratio(comove.ShapesLocator(), before, after, np.asarray([2.0, 2.0]), p) is None


class DiscModel:
  """Stand-in SpatialGAN: discs at its heatmap's centres (``follow``), or at the centres its
  latent was drawn with, which edits of the heatmap do not change."""
  resolution = 48

  def __init__(self, follow: bool):
    self.follow = follow

  def sample_heatmaps(self, seed, n):
    return hm.sample(jax.random.key(seed), n, "multi", object_std=0.35).numpy()

  def sample_z(self, seed, n):
    return self.sample_heatmaps(seed, n).centers.reshape(n, -1)

  def generate(self, z, truncation=1.0, heatmaps=None):
    out = []
    for k in range(len(z)):
      centres = heatmaps.centers[k] if self.follow else z[k].reshape(-1, 2)
      out.append(_scene(self.resolution, (centres + 1) * (self.resolution - 1) / 2,
                        radius=self.resolution / 10))
    return np.stack(out)


def test_comove_ratio_of_models_that_do_and_do_not_follow():
  following = comove.comove_ratio(DiscModel(True), num=24, seed=0, batch_size=8)
  assert following["comove_valid"] > 0.5
  np.testing.assert_allclose(following["comove_median"], 1.0, atol=0.1)
  # over all edits an unlocated one counts 0: the located mean scaled by the located share
  np.testing.assert_allclose(following["comove_all"],
                             following["comove"] * following["comove_valid"], rtol=1e-9)
  assert following["comove_all"] < following["comove"] or following["comove_valid"] == 1.0
  static = comove.comove_ratio(DiscModel(False), num=24, seed=0, batch_size=8)
  assert static["comove_valid"] > 0.5
  np.testing.assert_allclose(static["comove_median"], 0.0, atol=0.1)
