"""LPIPS v0.1 (Zhang et al. 2018) as a Flax Linen module, VGG16 or AlexNet backbone.

For images x, y in [-1, 1] (NHWC) and backbone taps ``f^l`` (l = 0..4, C_l channels)::

    x' = (x - shift) / scale                      (ScalingLayer = ImageNet mean/std on (x+1)/2)
    u^l = f^l / (||f^l||_2 over channels + 1e-10)          (unit-normalise each pixel)
    d(x, y) = sum_l mean_hw  sum_c w^l_c (u^l_x - u^l_y)^2_c

With ``spatial=True`` each tap's map ``sum_c w^l_c (.)^2`` is bilinearly upsampled
(half-pixel, ``align_corners=False``) to the input's H x W and the five maps are summed.

This module is pure and differentiable, for use inside a jitted training step::

    module, params = jaxspatial.metrics.lpips_module("vgg")
    loss = jaxspatial.metrics.lpips_distance(params, x, y, "vgg").mean()

The norm uses a gradient-safe square root, so an all-zero ReLU pixel (norm 0) gives a zero
rather than a NaN gradient; the forward value is unchanged.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxspatial.nets import vgg

PRECISION = jax.lax.Precision.HIGHEST
NETS = ("vgg", "alex")
# lpips.pretrained_networks.ScalingLayer buffers (float32), shape (3,) per channel.
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
NORM_EPS = 1e-10


def unit_normalise(f: jax.Array) -> jax.Array:
  """``f / (sqrt(sum_c f^2) + 1e-10)`` with a finite gradient where the sum is 0."""
  sq = jnp.sum(f * f, axis=-1, keepdims=True)
  positive = sq > 0
  norm = jnp.where(positive, jnp.sqrt(jnp.where(positive, sq, 1.0)), 0.0)
  return f / (norm + NORM_EPS)


class LPIPS(nn.Module):
  """``(x, y)`` each (n, H, W, 3) in [-1, 1] -> distance (n,), or map (n, H, W) if ``spatial``.

  Parameters: ``net`` (the backbone, torchvision ``features/conv<i>`` names) and
  ``lin0..lin4`` (the non-negative linear heads, each (C_l,)).
  """
  net: str = "vgg"

  @nn.compact
  def __call__(self, x: jax.Array, y: jax.Array, spatial: bool = False) -> jax.Array:
    if self.net not in NETS:
      raise ValueError(f"unknown LPIPS net {self.net!r}; expected one of {NETS}")
    if x.shape != y.shape:
      raise ValueError(f"LPIPS inputs differ in shape: {x.shape} vs {y.shape}")
    n, h, w, _ = x.shape
    both = jnp.concatenate([x, y], axis=0).astype(jnp.float32)
    both = (both - jnp.asarray(SHIFT, jnp.float32)) / jnp.asarray(SCALE, jnp.float32)
    backbone_cls = vgg.VGG16Features if self.net == "vgg" else vgg.AlexNetFeatures
    backbone = backbone_cls(name="net")
    total = jnp.zeros((n, h, w) if spatial else (n,), jnp.float32)
    for k, (tap, ch) in enumerate(zip(backbone(both), vgg.tap_channels(self.net))):
      lin = self.param(f"lin{k}", nn.initializers.zeros, (ch,))
      u = unit_normalise(tap)
      diff = jnp.square(u[:n] - u[n:])
      layer_map = jnp.einsum("nhwc,c->nhw", diff, lin, precision=PRECISION)
      if spatial:
        total = total + jax.image.resize(layer_map, (n, h, w), "bilinear", antialias=False)
      else:
        total = total + jnp.mean(layer_map, axis=(1, 2))
    return total


def lpips_distance(params, x: jax.Array, y: jax.Array, net: str = "vgg",
                   spatial: bool = False) -> jax.Array:
  """Pure LPIPS for use under ``jit``/``grad``: (n,) distances, or (n, H, W) maps if ``spatial``.

  ``params`` is the tree returned by :func:`jaxspatial.metrics.lpips_module` (or
  ``load_params("lpips-vgg")``); x, y are (n, H, W, 3) in [-1, 1].
  """
  return LPIPS(net).apply({"params": params}, x, y, spatial=spatial)
