"""Masked L1 (Chai et al. 2021): reconstruction error on the known pixels of a collage."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def masked_l1(reconstruction: jax.Array, target: jax.Array, mask: jax.Array) -> jax.Array:
  """Per-image ``sum |rec - target| * m / sum m`` -> (n,).

  ``reconstruction``, ``target``: (n, H, W, C); ``mask``: (n, H, W, 1) or (n, H, W, C), 1 on
  known pixels. The mask is broadcast to (n, H, W, C) before both sums, so the value is the mean
  absolute error per known pixel and channel (NaN for an image without known pixels).
  """
  rec = jnp.asarray(reconstruction, jnp.float32)
  m = jnp.broadcast_to(jnp.asarray(mask, jnp.float32), rec.shape)
  err = jnp.abs(rec - jnp.asarray(target, jnp.float32)) * m
  return jnp.sum(err, axis=(1, 2, 3)) / jnp.sum(m, axis=(1, 2, 3))
