"""Spatially modulated convolution (SSN, Hong et al. 2020, eq. 1 and appendix eq. 12-14).

    SpatiallyModulatedConv_w(h, s) = w * (s ⊙ h) / σ_E(w, s)

with a per-pixel style map ``s`` (N, H, W, Cin) and the *expected* output standard deviation

    σ_E(w, s)²_{c'} = mean_HW (w² * s²)_{c'}                               (eq. 14)

i.e. the mean over output pixels of the variance of ``w * (s ⊙ h)`` when ``h`` is i.i.d.
with zero mean and unit variance. Like StyleGAN2's demodulation it is one number per
(sample, output channel), so the layer is "scale activations -> one shared conv -> scale
outputs", the fast form (DESIGN.md).

Closed form without a second convolution
----------------------------------------
For tap ``t`` of a 'same' cross-correlation, output pixel ``o`` reads input ``o + t - r``
(``r = k // 2``), so

    σ_E² = Σ_{t, c} w²[t, c, c'] · S[t, c],   S[t, c] = mean_{o ∈ HW} s²[o + t - r, c]

``S`` holds the means of ``s²`` over the H×W window shifted by each of the k×k tap offsets:
``window_means`` gets all (2r+1)² of them from the total sum minus cumulative sums of the 2r
leading and trailing rows and columns. The cost is one reduction pass over ``s²`` plus one
(k²·Cin)×Cout contraction per sample — a k×k conv evaluated at a single pixel — instead of
a full-resolution ``w² * s²`` convolution.

Border convention
-----------------
At the image border some taps fall outside. StyleGAN2's demodulation counts every tap
(``Σ w² s²``) at every pixel, i.e. it is the expected variance of a pixel whose whole
receptive field lies on unit-variance inputs. ``border="replicate"`` (default) is the
spatial version of exactly that: the input continues beyond the border as i.i.d. unit noise
with the style of the nearest edge pixel (``s²`` edge-padded). With a spatially constant
style every window mean equals ``s²`` and σ_E equals StyleGAN2's demodulation, so an SSN
with constant styles *is* a StyleGAN2 (σ_E is a global per-channel factor, so any other
convention would rescale every pixel, not only the border ones). ``border="zero"`` is
eq. 14 read literally with a zero-padded ``w² * s²``: the taps outside count zero variance.

Up-sampling variant
-------------------
The 2× layer is StyleGAN2's: stride-2 transposed conv, then the fixed [1,3,3,1] blur
(rosinality). σ_E is a per-channel scalar, so it commutes with the blur and is defined on
the transposed-conv output ``y[o] = Σ_{2p+t=o} w[t] x[p]``. StyleGAN2 normalises by
``Σ w² s²`` = the output energy *per input pixel* (each input pixel feeds k² outputs, ~4
per output pixel); the spatial version is the same energy with ``s`` varying: every input
pixel ``q`` owns the output cell centred on its centre tap ``o = 2q + r`` with weights
(½, 1, ½) per axis (each in-between output is shared by two cells), so

    σ_E²(up) = 1/(HW) Σ_o ω(o) Var y[o],  ω = trapezoid weights over o ∈ [r-1, 2H+r-1]

which again reduces to ``Σ w² s²`` for constant ``s``. In closed form each tap ``t`` reads
input offset ``(r - t)/2`` (per axis), or the average of ``(r - t ± 1)/2`` when that is not
an integer: ``S_up = A S A^T`` with a fixed (k, 2r+1) matrix ``A`` per axis.
``sigma_e_sq_direct`` computes both variants the naive way (the second convolution) and
the tests check them against each other and against Monte-Carlo estimates.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxspatial.models import layers

Array = jax.Array
BORDERS = ("replicate", "zero")
UPSAMPLE_MODES = ("nearest", "bilinear")
_HIGHEST = jax.lax.Precision.HIGHEST


def _pad_border(a: Array, radius: int, border: str) -> Array:
  """Pads H and W of (N, H, W, C) by ``radius`` with edge values or zeros."""
  if border not in BORDERS:
    raise ValueError(f"border must be one of {BORDERS}, got {border!r}")
  widths = ((0, 0), (radius, radius), (radius, radius), (0, 0))
  return jnp.pad(a, widths, mode="edge" if border == "replicate" else "constant")


def window_means(s2: Array, radius: int, border: str = "replicate") -> Array:
  """Means of ``s2`` over the H×W window shifted by every offset in [-radius, radius]².

  Args:
    s2: (N, H, W, C), typically the squared styles.
    radius: the largest shift, ``k // 2`` for a k×k kernel.
    border: what lies outside the image ("replicate": edge values, "zero").
  Returns:
    (N, 2r+1, 2r+1, C); entry [a, b] is ``mean_{i<H, j<W} s2_padded[i + a, j + b]``, i.e.
    the mean of ``s2`` shifted by (a - r, b - r). No convolution: per axis, the window sums
    are the full sum minus cumulative sums of the 2r leading and trailing lines.
  """
  n, h, w, c = s2.shape
  p = _pad_border(s2.astype(jnp.float32), radius, border)
  sums = _window_sums(_window_sums(p, w, radius, axis=2), h, radius, axis=1)
  return sums / (h * w)


def _window_sums(p: Array, size: int, radius: int, axis: int) -> Array:
  """Sums of ``p`` over the 2r+1 windows of length ``size`` along ``axis`` (length size+2r),
  which replace that axis: window ``b`` = total - (first ``b`` lines) - (last ``2r - b``)."""
  total = jnp.sum(p, axis=axis, keepdims=True)
  if radius == 0:
    return total
  m = 2 * radius
  lead = jax.lax.slice_in_dim(p, 0, m, axis=axis)
  trail = jax.lax.slice_in_dim(p, size, size + m, axis=axis)
  zero = jnp.zeros_like(total)
  before = jnp.concatenate([zero, jnp.cumsum(lead, axis=axis)], axis=axis)
  after = jnp.concatenate([jnp.flip(jnp.cumsum(jnp.flip(trail, axis), axis=axis), axis), zero],
                          axis=axis)
  return total - before - after


def tap_offsets(kernel_size: int, up: bool) -> np.ndarray:
  """(k, 2r+1) per-axis map from window shifts to kernel taps.

  Row ``t`` says which shifted window tap ``t`` reads: the shift ``t - r`` for a 'same'
  cross-correlation; for the stride-2 transposed conv the input offset ``(r - t)/2`` of the
  cell centred on the centre tap, or the average of its two neighbours when ``r - t`` is odd
  (see the module docstring).
  """
  if kernel_size % 2 != 1:
    raise ValueError(f"kernel size must be odd, got {kernel_size}")
  r = kernel_size // 2
  a = np.zeros((kernel_size, 2 * r + 1), np.float32)
  for t in range(kernel_size):
    if not up:
      a[t, t] = 1.0
    elif (r - t) % 2 == 0:
      a[t, (r - t) // 2 + r] = 1.0
    else:
      a[t, (r - t - 1) // 2 + r] += 0.5
      a[t, (r - t + 1) // 2 + r] += 0.5
  return a


def sigma_e_sq(weight: Array, styles: Array, *, up: bool = False,
               border: str = "replicate") -> Array:
  """σ_E² of eq. 14 in closed form (window means of s², no second convolution).

  Args:
    weight: (k, k, Cin, Cout), already scaled by the equalized-LR constant.
    styles: (N, H, W, Cin) per-pixel styles ``s`` at the layer's *input* resolution.
    up: the 2× up-sampling layer (transposed conv) instead of a 'same' conv.
    border: "replicate" (reduces to StyleGAN2 for constant styles) or "zero".
  Returns:
    (N, Cout) float32.
  """
  k = weight.shape[0]
  m = window_means(jnp.square(styles.astype(jnp.float32)), k // 2, border)
  a = jnp.asarray(tap_offsets(k, up))
  s_taps = jnp.einsum("ta,ub,nabc->ntuc", a, a, m, precision=_HIGHEST)
  w2 = jnp.square(weight.astype(jnp.float32))
  return jnp.einsum("ntuc,tucd->nd", s_taps, w2, precision=_HIGHEST)


def _trapezoid(n: int) -> np.ndarray:
  t = np.ones(n, np.float32)
  t[0] = t[-1] = 0.5
  return t


def energy_per_input_pixel(y: Array, height: int, width: int, radius: int, up: bool) -> Array:
  """Reduces a map of (expected) squared outputs to σ_E² as defined in the module docstring.

  ``y``: 'same'-conv outputs (N, H, W, C) or, for ``up``, transposed-conv outputs of an input
  padded by ``radius`` (offset ``3r`` from the unpadded output grid). Returns (N, C).
  """
  if not up:
    return jnp.mean(y, axis=(1, 2))
  o0 = 3 * radius - 1
  y = y[:, o0:o0 + 2 * height + 1, o0:o0 + 2 * width + 1]
  wt = jnp.asarray(np.outer(_trapezoid(2 * height + 1), _trapezoid(2 * width + 1)))
  return jnp.einsum("nhwc,hw->nc", y, wt, precision=_HIGHEST) / (height * width)


def sigma_e_sq_direct(weight: Array, styles: Array, *, up: bool = False,
                      border: str = "replicate") -> Array:
  """σ_E² the naive way: the full second convolution ``w² * s²``, then the output mean.

  Same arguments and result as :func:`sigma_e_sq`; costs a full conv (tests, benchmarks).
  """
  k = weight.shape[0]
  r = k // 2
  if up and r == 0:
    raise ValueError("the up-sampling layer needs a kernel of size >= 3")
  n, h, w, _ = styles.shape
  s2 = _pad_border(jnp.square(styles.astype(jnp.float32)), r, border)
  w2 = jnp.square(weight.astype(jnp.float32))
  if up:
    var = layers.conv_transpose_2x(s2, w2, precision=_HIGHEST)
  else:
    var = jax.lax.conv_general_dilated(s2, w2, (1, 1), "VALID",
                                       dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                       precision=_HIGHEST)
  return energy_per_input_pixel(var, h, w, r, up)


def spatially_modulated_conv(x: Array, weight: Array, styles: Array, *, demodulate: bool = True,
                             up: bool = False, border: str = "replicate") -> Array:
  """``w * (s ⊙ x) / σ_E(w, s)`` (paper eq. 1) in activation form.

  The convolution (and the 2× up-sampling path) is exactly StyleGAN2's
  (:func:`jaxspatial.layers.modulated_conv` with unit styles); only the modulation is per
  pixel and the demodulation is σ_E instead of ``rsqrt(Σ w² s²)``. The same ``1e-8`` is
  added to σ_E² as StyleGAN2 adds to its sum.

  Args:
    x: (N, H, W, Cin) activations.
    weight: (k, k, Cin, Cout), already scaled by the equalized-LR constant.
    styles: (N, H, W, Cin) per-pixel styles at the input resolution.
    demodulate: divide by σ_E (ToRGB uses False).
    up: 2× up-sampling (k = 3), as StyleGAN2.
    border: σ_E's border convention (see the module docstring).
  Returns:
    (N, H', W', Cout), H' = H or 2H.
  """
  if styles.shape[:3] != x.shape[:3] or styles.shape[-1] != x.shape[-1]:
    raise ValueError(f"styles {styles.shape} do not match activations {x.shape}")
  unit = jnp.ones((x.shape[0], x.shape[-1]), x.dtype)
  y = layers.modulated_conv(x * styles.astype(x.dtype), weight, unit, demodulate=False, up=up)
  if demodulate:
    d = jax.lax.rsqrt(sigma_e_sq(weight, styles, up=up, border=border) + layers.DEMOD_EPS)
    y = y * d.astype(y.dtype)[:, None, None, :]
  return y


def resize_styles(s: Array, size: Sequence[int], mode: str = "nearest") -> Array:
  """Block-grid styles (N, nh, nw, C) -> per-pixel styles (N, H, W, C) at a layer's size.

  Up-sampling by an integer factor: "nearest" repeats each block's style over its pixels
  (the style of pixel p is exactly its block's, as SPADE resizes its conditioning);
  "bilinear" interpolates between block centres (half-pixel centres, edge-clamped). A layer
  coarser than the grid averages the blocks it covers (both modes). Constant grids stay
  constant in every case. Sizes must be powers-of-two multiples or divisors of the grid.
  """
  if mode not in UPSAMPLE_MODES:
    raise ValueError(f"style upsample mode must be one of {UPSAMPLE_MODES}, got {mode!r}")
  n, gh, gw, c = s.shape
  h, w = int(size[0]), int(size[1])
  if (h, w) == (gh, gw):
    return s
  if h < gh or w < gw:
    if gh % h or gw % w:
      raise ValueError(f"cannot average a {gh}x{gw} style grid down to {h}x{w}")
    return s.reshape(n, h, gh // h, w, gw // w, c).mean(axis=(2, 4))
  if h % gh or w % gw:
    raise ValueError(f"a {gh}x{gw} style grid does not tile a {h}x{w} layer")
  if mode == "nearest":
    return jnp.repeat(jnp.repeat(s, h // gh, axis=1), w // gw, axis=2)
  return jax.image.resize(s, (n, h, w, c), method="linear", antialias=False)


class SpatiallyModulatedConv(nn.Module):
  """Affine block styles -> per-pixel styles -> :func:`spatially_modulated_conv`.

  ``modulation`` is StyleGAN2's style affine (EqualDense, bias init 1) applied to every block
  of the grid — a 1×1 conv — and the result is resized to the input resolution
  (:func:`resize_styles`); affine and resize commute, so doing the affine on the small grid
  is the cheap order. Params: ``weight`` (k, k, Cin, Cout) ~ N(0, 1), ``modulation/*``, named
  as in :class:`jaxspatial.layers.ModulatedConv` so StyleGAN2 weights transfer by name.
  """
  features: int
  kernel_size: int
  demodulate: bool = True
  up: bool = False
  upsample: str = "nearest"
  border: str = "replicate"

  @nn.compact
  def __call__(self, x: Array, w_grid: Array) -> Array:
    """x: (N, H, W, Cin); w_grid: (N, nh, nw, w_dim) -> (N, H', W', features)."""
    cin, k = x.shape[-1], self.kernel_size
    styles = layers.EqualDense(cin, bias_init=1.0, name="modulation")(w_grid.astype(jnp.float32))
    styles = resize_styles(styles, x.shape[1:3], self.upsample)
    weight = self.param("weight", nn.initializers.normal(1.0), (k, k, cin, self.features))
    weight = weight / math.sqrt(cin * k * k)
    return spatially_modulated_conv(x, weight, styles, demodulate=self.demodulate, up=self.up,
                                    border=self.border)
