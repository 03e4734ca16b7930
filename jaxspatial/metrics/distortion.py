"""Distortion of low-distortion block resampling (SSN, Hong et al. 2020).

Resampling latent blocks should change only the matching image blocks; the distortion is the
pixel MSE over the blocks that were *not* resampled.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def block_pixel_mask(resampled: jax.Array, height: int, width: int) -> jax.Array:
  """(n, nh, nw) or (nh, nw) block flags (1 = resampled) -> (n|1, H, W) pixel mask of the
  *kept* blocks (1 = not resampled); H, W must be multiples of nh, nw."""
  r = jnp.asarray(resampled, jnp.float32)
  r = r[None] if r.ndim == 2 else r
  nh, nw = r.shape[1:]
  if height % nh or width % nw:
    raise ValueError(f"image {height}x{width} is not a whole number of {nh}x{nw} blocks")
  up = jnp.repeat(jnp.repeat(r, height // nh, axis=1), width // nw, axis=2)
  return 1.0 - up


def block_distortion(before: jax.Array, after: jax.Array, resampled: jax.Array) -> jax.Array:
  """Per-image MSE over the non-resampled blocks -> (n,).

  ``D = sum_{hwc} k_hw (after - before)^2 / (C sum_hw k_hw)`` with ``k`` the kept-block mask
  from :func:`block_pixel_mask`; ``before``, ``after``: (n, H, W, C) images.
  """
  x0 = jnp.asarray(before, jnp.float32)
  x1 = jnp.asarray(after, jnp.float32)
  n, h, w, c = x0.shape
  keep = jnp.broadcast_to(block_pixel_mask(resampled, h, w), (n, h, w))
  sq = jnp.sum(jnp.square(x1 - x0), axis=-1)
  return jnp.sum(sq * keep, axis=(1, 2)) / (c * jnp.sum(keep, axis=(1, 2)))
