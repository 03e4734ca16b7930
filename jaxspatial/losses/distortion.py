"""SSN's distortion ``D`` between two images and its means over the latent blocks.

These measure how much of an image changed; they optimise nothing. Both the training
objective R_D (:func:`jaxspatial.losses.ssn.distortion_regularizer`) and the paper's Table-2
metric (:func:`jaxspatial.metrics.distortion.distortion`) average them (as does SpatialGAN's
heatmap-locality penalty, :mod:`jaxspatial.losses.spatialgan`), so they live here, a
module of their own in the lowest layer both may import (``losses`` may not import
``metrics``; ``metrics`` may import ``losses``): the metric imports the measure, not the
training objective, and the two cannot drift apart.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array


def pixel_distortion(x: Array, y: Array) -> Array:
  """Squared Euclidean distance between pixels, ``Σ_c (x - y)²``, for images in the
  generator's [-1, 1] range: (n, H, W, C) -> (n, H, W)."""
  d = x.astype(jnp.float32) - y.astype(jnp.float32)
  return jnp.sum(jnp.square(d), axis=-1)


def block_means(dmap: Array, grid: tuple[int, int]) -> Array:
  """Mean of a per-pixel map (n, h, w) over each block of a (nh, nw) grid -> (n, nh, nw)."""
  n, h, w = dmap.shape
  nh, nw = grid
  if h % nh or w % nw:
    raise ValueError(f"a {h}x{w} distortion map is not a whole number of {nh}x{nw} blocks")
  return dmap.reshape(n, nh, h // nh, nw, w // nw).mean(axis=(2, 4))
