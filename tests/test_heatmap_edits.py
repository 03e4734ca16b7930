"""The heatmap-edit measures on two drawn "generators" whose answers are known: one that
paints a disc under every heatmap centre (area ∝ σ, colour from that object's latent), which
every edit should steer and nothing else should change, and one that ignores its heatmaps."""

import dataclasses

import jax
import numpy as np
import pytest

from jaxspatial.metrics import heatmap_edits
from jaxspatial.models import heatmaps as hm

RES = 48
K = 2
PLACES = np.array([[-0.45, 0.45], [0.45, -0.45]])
"""Where object k's centre is drawn (heatmap units, (row, col))."""
PALETTE = np.array([[1.0, -1.0, -1.0], [-1.0, 1.0, -1.0], [-1.0, -1.0, 1.0], [1.0, 1.0, -1.0],
                    [1.0, -1.0, 1.0], [-1.0, 1.0, 1.0]], np.float32)


@dataclasses.dataclass
class Discs:
  """Background grey; object k a disc at its centre, radius ∝ sqrt(σ) (area ∝ σ), colour
  picked by its latent; a removed centre draws nothing. ``follows=False``: the discs stay at
  fixed places with a fixed size whatever the heatmaps say."""
  follows: bool = True
  resolution: int = RES
  indoor: bool = True

  def sample_z(self, seed: int, n: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 1 + K, 4)).astype(np.float32)

  def sample_heatmaps(self, seed: int, n: int = 1) -> hm.Heatmaps:
    h = hm.sample(jax.random.key(seed), n, "multi", num_objects=K).numpy()
    # Objects well apart and inside the image, so that discs do not touch.
    centers = PLACES[None] + np.random.default_rng(seed).uniform(-0.1, 0.1, (n, K, 2))
    return h.replace(centers=centers.astype(np.float32),
                     sigmas=np.full((n, K), 0.02, np.float32))

  def generate(self, z: np.ndarray, heatmaps: hm.Heatmaps, **_) -> np.ndarray:
    n = len(z)
    yy, xx = np.mgrid[:RES, :RES]
    out = np.zeros((n, RES, RES, 3), np.float32)
    for b in range(n):
      for k in range(K):
        if self.follows:
          c, s, a = heatmaps.centers[b, k], heatmaps.sigmas[b, k], heatmaps.amplitudes[b, k]
        else:
          c, s, a = PLACES[k], 0.02, 1.0
        if a == 0:
          continue
        cy, cx = (c + 1) * (RES - 1) / 2
        radius = 40 * np.sqrt(s)
        colour = PALETTE[int(np.argmax(z[b, 1 + k, :3])) + 3 * k % 6]
        out[b][(yy - cy) ** 2 + (xx - cx) ** 2 <= radius ** 2] = colour
    return out


@pytest.fixture(scope="module")
def steered():
  return heatmap_edits.heatmap_edits(Discs(follows=True), num=24, seed=0, batch_size=8)


@pytest.fixture(scope="module")
def ignored():
  return heatmap_edits.heatmap_edits(Discs(follows=False), num=24, seed=0, batch_size=8)


def test_edits_of_a_generator_that_follows_its_heatmaps(steered):
  for kind in heatmap_edits.KINDS:
    assert steered[f"{kind}_located"] == 1.0, kind
  assert steered["move_comove"] == pytest.approx(1.0, abs=0.1)
  assert steered["remove_kept"] == 0.0
  assert steered["scale_response"] == pytest.approx(1.0, abs=0.15)
  assert steered["restyle_inside"] > 0.1
  assert steered["keep_located"] == 1.0 and steered["keep_shift"] == pytest.approx(0.0, abs=1e-6)
  for kind in ("move", "remove", "restyle"):
    assert steered[f"{kind}_outside"] == pytest.approx(0.0, abs=1e-6), kind


def test_edits_of_a_generator_that_ignores_them(ignored):
  assert ignored["move_comove"] == pytest.approx(0.0, abs=1e-6)
  assert ignored["remove_kept"] == 1.0
  assert ignored["scale_response"] == pytest.approx(0.0, abs=1e-6)


def test_locality_counts_changes_outside_the_object():
  before = np.zeros((8, 8, 3), np.float32)
  after = before.copy()
  after[0, 0] = 1.0                       # far from the object: counted
  after[4, 4] = -1.0                      # on the object: not counted
  obj = np.zeros((8, 8), bool)
  obj[4, 4] = True
  region = np.ones((8, 8), bool)
  region[3:6, 3:6] = False                # the object dilated by one pixel
  assert heatmap_edits.outside(before, after, obj) == pytest.approx(0.5 / region.sum())
