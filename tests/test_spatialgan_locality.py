"""The heatmap-locality penalty (``losses.spatialgan.heatmap_locality_regularizer``): its
pieces against numpy re-implementations of their definitions, zero for an edit that changes
nothing outside the edited region, and the gradient the training step takes from it."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import ndimage

from helpers import np_init, rbg_keys
from jaxspatial import families
from jaxspatial.losses import spatialgan as sgl
from jaxspatial.models import heatmaps as hm
from jaxspatial.models import spatialgan as sp

R = 16
CASES = [("multi", 0.1), ("hierarchical", 0.6)]
"""Heatmap mode and threshold: a hierarchical root's sigma (0.5-1) covers most of a 16 px
image above 0.1."""


@pytest.fixture(autouse=True, scope="module")
def fast_prng():
  """rbg keys for the whole module (:func:`helpers.rbg_keys`)."""
  with rbg_keys():
    yield


def np_maps(centers, sigmas, amplitudes, res=R):
  """Paper eq. 1 on the align-corners grid, in float64: (N, R, R, K)."""
  g = 2.0 * np.arange(res) / (res - 1) - 1.0
  c = np.asarray(centers, np.float64)
  d2 = (g[None, :, None, None] - c[:, None, None, :, 0]) ** 2 + (
      g[None, None, :, None] - c[:, None, None, :, 1]) ** 2
  a, s = (np.asarray(v, np.float64)[:, None, None, :] for v in (amplitudes, sigmas))
  return a * np.exp(-d2 / s) + 0.01


def np_region(before, after, edited, threshold):
  """Where an edited centre's map (before or after) exceeds ``threshold``, dilated by a 3x3
  square; ``edited`` (N, K) bool."""
  above = [(np_maps(h.centers, h.sigmas, h.amplitudes) > threshold) for h in (before, after)]
  union = np.any((above[0] | above[1]) & edited[:, None, None, :], axis=-1)
  return np.stack([ndimage.binary_dilation(u, np.ones((3, 3), bool)) for u in union])


def np_outside(x, y, region):
  """Per sample: mean over the pixels outside ``region`` of sum_c (x - y)^2, float64."""
  d = np.sum((np.asarray(x, np.float64) - np.asarray(y, np.float64)) ** 2, axis=-1)
  return np.array([d[k][~region[k]].mean() if (~region[k]).any() else 0.0
                   for k in range(len(d))])


def test_outside_distortion_matches_numpy():
  rng = np.random.default_rng(0)
  x, y = rng.uniform(-1, 1, (2, 3, 8, 8, 3)).astype(np.float32)
  region = rng.uniform(size=(3, 8, 8)) < 0.4
  region[2] = True                              # nothing outside: counts 0
  got = sgl.outside_distortion(jnp.asarray(x), jnp.asarray(y), jnp.asarray(region, jnp.float32))
  want = np_outside(x, y, region)
  assert want[0] > 0 and want[2] == 0
  np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5)


@pytest.mark.parametrize("mode,threshold", CASES)
def test_move_region_and_penalty(mode, threshold):
  """One root per sample moves (a hierarchical root with its children) by the measures'
  distance, nothing else does, and the region is the numpy definition on the moved centres.
  A "generator" whose centres paint only where their maps exceed the threshold changes
  nothing outside the region: the penalty is exactly 0. Painting the maps themselves (their
  tails reach everywhere) it is > 0 and equals the numpy equation on what it rendered."""
  h = hm.sample(jax.random.key(3), 6, mode, object_sigma_scale=0.1)
  colours = jnp.linspace(0.5, 1.0, h.num_centers)

  def local(heatmaps):
    paint = (heatmaps.maps(R) > threshold).astype(jnp.float32) @ colours
    return jnp.repeat(paint[..., None], 3, axis=-1)

  def smooth(heatmaps):
    return jnp.repeat((heatmaps.maps(R) @ colours)[..., None], 3, axis=-1)

  @jax.jit
  def run(h, key):
    return (sgl.random_move(h, key),
            sgl.heatmap_locality_regularizer(local, h, key, threshold=threshold),
            sgl.heatmap_locality_regularizer(smooth, h, key, threshold=threshold))

  (moved, chosen), (zero, local_aux), (loss, aux) = jax.device_get(run(h, jax.random.key(4)))
  edited = np.array([[k == i or k in h.descendants(i) for k in range(h.num_centers)]
                     for i in chosen])
  assert set(chosen) <= set(h.roots) and edited.sum(1).min() == (1 if mode == "multi" else 7)
  np.testing.assert_array_equal(aux["chosen"], chosen)
  shift = moved.centers - np.asarray(h.centers)
  assert np.all(shift[~edited] == 0)
  step = shift[np.arange(6), chosen]
  new = moved.centers[np.arange(6), chosen]
  length = np.linalg.norm(step, axis=-1)
  inside = np.all(np.abs(new) < hm.MOVE_LIMIT - 1e-6, axis=-1)    # not clipped
  assert np.all(np.abs(new) <= hm.MOVE_LIMIT + 1e-6) and inside.any()
  assert np.all((length[inside] >= 0.2 - 1e-6) & (length[inside] <= 0.4 + 1e-6))
  np.testing.assert_allclose(shift[edited].reshape(6, -1, 2), np.broadcast_to(
      step[:, None], shift[edited].reshape(6, -1, 2).shape), atol=1e-6)
  region = np_region(h.numpy(), moved, edited, threshold)
  assert 0 < region.mean() < 1
  np.testing.assert_array_equal(aux["region"] > 0.5, region)
  assert zero == 0.0 and np.abs(local_aux["edited"] - local_aux["images"]).max() > 0.4
  assert loss > 0
  np.testing.assert_allclose(loss, np_outside(aux["images"], aux["edited"], region).mean(),
                             rtol=1e-5)


@pytest.fixture(scope="module")
def plugin_and_inputs():
  """A plug-in with locality weight 2 (alignment off) on a tiny multi-object G, its
  variables and a batch of inputs."""
  from jaxspatial.training.spatialgan import SpatialGANPlugin
  model = sp.spatialgan_model_config(8, z_dim=8, w_dim=8, n_mlp=1, channel_base=64,
                                     channel_max=8, sel_hidden=8, heatmaps="multi",
                                     object_sigma_scale=0.1)
  config = ml_collections.ConfigDict({"model": model, "loss": {
      "align_weight": 0.0, "locality_weight": 2.0}})
  g = families.build_generator(model)
  plugin = SpatialGANPlugin(config, g, None)
  inputs = plugin.sample_inputs(jax.random.key(1), 4)
  return plugin, np_init(g, 0, inputs["z"], inputs["heatmaps"]), inputs


def test_gradient_reaches_g_and_vanishes_at_weight_zero(plugin_and_inputs):
  """Through both renderings to the last block's ToRGB and its heatmap encoder (the gradient
  of the layers nearest the image only: a whole backward pass compiles twice as long)."""
  plugin, g_vars, inputs = plugin_and_inputs
  synthesis = g_vars["params"]["synthesis"]
  last = {k: synthesis[k] for k in ("to_rgbs_0", "sel_to_rgbs_0")}

  def grads():
    def f(layers):
      params = {**g_vars["params"], "synthesis": {**synthesis, **layers}}
      return plugin.extra_generator_loss({**g_vars, "params": params}, None, inputs, None,
                                         None, jax.random.key(2))
    return jax.jit(jax.value_and_grad(f, has_aux=True))(last)

  (loss, metrics), g = grads()
  assert float(metrics["locality_loss"]) > 0
  np.testing.assert_allclose(float(loss), 2.0 * float(metrics["locality_loss"]), rtol=1e-6)
  for name, layer in g.items():
    leaves = jax.tree.leaves(layer)
    assert all(np.isfinite(np.asarray(v)).all() for v in leaves)
    assert max(float(jnp.abs(v).max()) for v in leaves) > 0, name
  plugin.config.loss.locality_weight = 0.0
  try:
    (loss, metrics), g = grads()
  finally:
    plugin.config.loss.locality_weight = 2.0
  assert float(loss) == 0.0 and "locality_loss" not in metrics
  assert all(float(jnp.abs(v).max()) == 0.0 for v in jax.tree.leaves(g))
