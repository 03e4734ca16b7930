"""StyleGAN2 building blocks in JAX, NHWC throughout.

Everything here follows rosinality/stylegan2-pytorch (see shared/reference/.../SPEC.md) so
that converted PyTorch checkpoints reproduce their images:

* equalized learning rate: weights are stored ``N(0, 1) / lr_mul`` and scaled at run time
  by ``lr_mul / sqrt(fan_in)``; biases by ``lr_mul``;
* ``upfirdn2d`` with StyleGAN2's padding arithmetic and the [1, 3, 3, 1] FIR filter;
* bias + leaky ReLU(0.2) with gain sqrt(2);
* modulated convolution in the "scale activations -> shared conv -> scale outputs" form,
  which is mathematically the per-sample weight modulation of the paper but runs as one
  ordinary convolution (fast forward and backward in XLA);
* noise injection and minibatch standard deviation.

Conv weights are HWIO ``(kh, kw, in, out)``; dense weights ``(in, out)``.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
SQRT2 = math.sqrt(2.0)
DEMOD_EPS = 1e-8
FIR_KERNEL = (1, 3, 3, 1)


# ---------------------------------------------------------------------------- FIR filters


def fir_kernel(taps: Sequence[float] = FIR_KERNEL, gain: float = 1.0) -> np.ndarray:
  """Separable 2-D FIR kernel ``outer(k, k) / sum(outer(k, k)) * gain``, shape (kh, kw)."""
  k = np.asarray(taps, np.float32)
  k2 = np.outer(k, k)
  return (k2 / k2.sum() * gain).astype(np.float32)


def upfirdn2d(x: Array, kernel: np.ndarray, up: int = 1, down: int = 1,
              pad: tuple[int, int] = (0, 0)) -> Array:
  """Upsample, pad, FIR-filter and downsample, per channel (StyleGAN2 ``upfirdn2d``).

  Steps on each spatial axis: zero-stuff by ``up`` (length ``H*up`` incl. trailing zeros),
  pad ``pad[0]`` before and ``pad[1]`` after, *convolve* with ``kernel`` (valid), keep every
  ``down``-th sample. Output size ``(H*up + p0 + p1 - kh) // down + 1``.

  Written as one ``lax.pad`` (zero-stuffing is interior padding) and a weighted sum of
  ``kh * kw`` shifted slices, which XLA fuses into one elementwise pass: on CPU 10-30x faster
  forward and backward than the same filter as a depthwise convolution. Its gradient is the
  adjoint filter in the same form (:func:`_fir_adjoint`), not autodiff's transpose of the
  slices (a zero pad of the whole array per tap).

  Args:
    x: (N, H, W, C).
    kernel: (kh, kw) FIR filter, a constant (applied as a true convolution, i.e. flipped).
    up, down: integer factors. pad: (before, after), non-negative.
  Returns:
    (N, H', W', C).
  """
  p0, p1 = pad
  if p0 < 0 or p1 < 0:
    raise ValueError("upfirdn2d: negative padding (cropping) is not supported")
  taps = tuple(map(tuple, np.asarray(kernel, np.float32).tolist()))
  return _fir(x, taps, up, down, ((p0, p1), (p0, p1)), x.shape[1:3])


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4, 5))
def _fir(x: Array, taps: tuple, up: int, down: int, pad: tuple, size: tuple) -> Array:
  """:func:`upfirdn2d` with a padding per axis, ``((py0, py1), (px0, px1))``, where a
  negative one crops; ``size`` is ``x``'s (H, W), which the gradient needs."""
  del size
  flipped = np.flip(np.asarray(taps, np.float32), (0, 1))
  kh, kw = flipped.shape
  (py0, py1), (px0, px1) = pad
  x = jax.lax.pad(x, jnp.zeros((), x.dtype), [(0, 0, 0), (py0, py1 + up - 1, up - 1),
                                              (px0, px1 + up - 1, up - 1), (0, 0, 0)])
  oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
  y = sum(jnp.asarray(flipped[i, j], x.dtype) * x[:, i:i + oh, j:j + ow]
          for i in range(kh) for j in range(kw) if flipped[i, j] != 0)
  return y[:, ::down, ::down] if down > 1 else y


def _fir_adjoint(taps: tuple, up: int, down: int, pad: tuple, size: tuple, _, dy: Array):
  """The gradient of :func:`_fir`: ``y[m] = sum_i x[i] f[m down + kh - 1 - p0 - i up]`` on
  each axis, so ``dx[i] = sum_m dy[m] f[m down + kh - 1 - p0 - i up]``, which is the same
  operation on ``dy`` with the kernel flipped, ``up`` and ``down`` swapped and padding
  ``(kh - 1 - p0, H up - H' down + p0 - up + 1)`` (stylegan2-ada's ``upfirdn2d`` gradient).
  It is a ``_fir`` again, so R1's second derivative keeps the form."""
  kernel_size = len(taps), len(taps[0])
  out_size = dy.shape[1:3]
  adjoint_pad = tuple((k - 1 - p0, n * up - m * down + p0 - up + 1)
                      for k, (p0, _), n, m in zip(kernel_size, pad, size, out_size))
  flipped = tuple(tuple(row[::-1]) for row in taps[::-1])
  return (_fir(dy, flipped, down, up, adjoint_pad, out_size),)


_fir.defvjp(lambda x, *static: (_fir(x, *static), None), _fir_adjoint)


def upfirdn2d_reference(x, kernel, up: int = 1, down: int = 1, pad=(0, 0)):
  """Reference for :func:`upfirdn2d`: the same filter as one depthwise (grouped) convolution
  of the zero-stuffed input (slower; the tests and ``bench fir`` compare the two)."""
  c = x.shape[-1]
  w = jnp.tile(jnp.flip(jnp.asarray(kernel, x.dtype), (0, 1))[:, :, None, None], (1, 1, 1, c))
  p0, p1 = pad
  return jax.lax.conv_general_dilated(
      x, w, (down, down), ((p0, p1 + up - 1), (p0, p1 + up - 1)), lhs_dilation=(up, up),
      dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c)


def blur(x: Array, pad: tuple[int, int], gain: float = 1.0) -> Array:
  """``upfirdn2d`` with the [1,3,3,1] FIR filter scaled by ``gain``."""
  return upfirdn2d(x, fir_kernel(gain=gain), pad=pad)


def upsample2x(x: Array) -> Array:
  """2x FIR upsampling used on ToRGB skips: ``upfirdn2d(x, 4K, up=2, pad=(2, 1))``."""
  return upfirdn2d(x, fir_kernel(gain=4.0), up=2, pad=(2, 1))


def downsample2x(x: Array) -> Array:
  """2x FIR downsampling: ``upfirdn2d(x, K, down=2, pad=(1, 1))``."""
  return upfirdn2d(x, fir_kernel(), down=2, pad=(1, 1))


# --------------------------------------------------------------------------- activations


def bias_act(x: Array, bias: Array | None, activate: bool = True,
             clamp: float | None = None) -> Array:
  """``clip(lrelu(x + bias, 0.2) * sqrt(2), -clamp, clamp)`` (rosinality ``FusedLeakyReLU``;
  stylegan2-ada ``bias_act`` with ``conv_clamp``); bias on the last axis, no clip for None."""
  if bias is not None:
    x = x + bias.astype(x.dtype)
  if activate:
    x = jax.nn.leaky_relu(x, 0.2) * jnp.asarray(SQRT2, x.dtype)
  if clamp is not None:
    x = jnp.clip(x, -clamp, clamp)
  return x


def pixel_norm(x: Array, axis: int = -1, eps: float = 1e-8) -> Array:
  """``x * rsqrt(mean(x^2, axis) + eps)``."""
  return x * jax.lax.rsqrt(jnp.mean(jnp.square(x), axis=axis, keepdims=True) + eps)


# ------------------------------------------------------------------- equalized-LR layers


def _normal_over(lr_mul: float) -> Callable:
  def init(key, shape, dtype=jnp.float32):
    return jax.random.normal(key, shape, dtype) / lr_mul
  return init


class EqualDense(nn.Module):
  """Dense layer with equalized learning rate (``EqualLinear``).

  ``y = act(x @ (W * lr_mul / sqrt(in)) + b * lr_mul)``; W stored (in, out), init
  N(0,1)/lr_mul; b stored (out,), init ``bias_init``.
  """
  features: int
  lr_mul: float = 1.0
  bias_init: float = 0.0
  use_bias: bool = True
  activate: bool = False

  @nn.compact
  def __call__(self, x: Array) -> Array:
    fan_in = x.shape[-1]
    w = self.param("weight", _normal_over(self.lr_mul), (fan_in, self.features))
    scale = self.lr_mul / math.sqrt(fan_in)
    y = jnp.dot(x, (w * scale).astype(x.dtype))
    b = None
    if self.use_bias:
      b = self.param("bias", nn.initializers.constant(self.bias_init),
                     (self.features,)) * self.lr_mul
    if self.activate:
      return bias_act(y, b)
    return y if b is None else y + b.astype(y.dtype)


class EqualConv(nn.Module):
  """Convolution with equalized learning rate, optional FIR-blurred 2x downsampling.

  Without ``down``: cross-correlation, stride 1, padding k//2. With ``down``: blur with
  ``pad = ((p+1)//2, p//2)``, ``p = 2 + k - 1``, then a stride-2 valid conv (StyleGAN2 D).
  The bias (if any) is a ``bias_act`` bias, ``clamp`` its output clip. Weight HWIO, init N(0, 1).
  """
  features: int
  kernel_size: int
  down: bool = False
  use_bias: bool = True
  activate: bool = True
  clamp: float | None = None

  @nn.compact
  def __call__(self, x: Array) -> Array:
    k = self.kernel_size
    fan_in = x.shape[-1] * k * k
    w = self.param("weight", nn.initializers.normal(1.0), (k, k, x.shape[-1], self.features))
    w = (w / math.sqrt(fan_in)).astype(x.dtype)
    if self.down:
      p = 2 + k - 1
      x = blur(x, ((p + 1) // 2, p // 2))
      stride, padding = 2, "VALID"
    else:
      stride, padding = 1, [(k // 2, k // 2)] * 2
    y = jax.lax.conv_general_dilated(x, w, (stride, stride), padding,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    b = self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else None
    return bias_act(y, b, self.activate, self.clamp)


# ------------------------------------------------------------------- modulated convolution


def conv_transpose_2x(x: Array, weight: Array, precision=None) -> Array:
  """Stride-2 transposed convolution, no padding: ``y[2p + t] += w[t] x[p]`` on each axis.

  Computed as its four sub-pixel phases, each with only the taps it sees: output rows of
  parity ``a`` see the taps ``t = a, a + 2, ...`` (``T_a = ceil((k - a) / 2)`` of them), so
  phase ``(a, b)`` is one ``T_a x T_b`` correlation of ``x`` with those taps reversed. Each
  phase is padded to ``H + T - 1`` rows (``T = T_0``) so that the four interleave
  depth-to-space. That is ``k^2`` multiply-adds per input pixel and channel pair, where one
  ``T x T`` convolution with the phases stacked on the output axis would multiply the zero taps
  too (``4 T^2``: 16 against 9 at ``k = 3``; this form is 1.4-1.5x faster at StyleGAN2's
  widths, docs/benchmarks.md). Same values as ``conv_general_dilated`` with
  ``lhs_dilation=2``, but XLA:CPU takes that form's weight gradient ~8x slower.

  Args:
    x: (N, H, W, Cin).
    weight: (k, k, Cin, Cout).
  Returns:
    (N, 2H + k - 2, 2W + k - 2, Cout).
  """
  k, cout = weight.shape[0], weight.shape[-1]
  taps = (k + 1) // 2

  def phase_taps(a):   # y[2m + a] = sum_q w[a + 2 (T_a - 1 - q)] x[m - (T_a - 1) + q]
    t_a = (k - a + 1) // 2
    return a + 2 * (t_a - 1 - np.arange(t_a))

  rows = []
  for a in range(2):
    ta = phase_taps(a)
    phases = []
    for b in range(2):
      tb = phase_taps(b)
      if not (len(ta) and len(tb)):   # k = 1: the odd phases see no tap
        phases.append(jnp.zeros(x.shape[:1] + tuple(n + taps - 1 for n in x.shape[1:3])
                                + (cout,), x.dtype))
        continue
      # Padded apart from the convolution: with the padding inside it, XLA:CPU's weight
      # gradient leaves its fast path (a 64 px training step ran 2.9x slower).
      pad = [(0, 0), (len(ta) - 1, taps - 1), (len(tb) - 1, taps - 1), (0, 0)]
      phases.append(jax.lax.conv_general_dilated(
          jnp.pad(x, pad), weight[ta][:, tb], (1, 1), "VALID",
          dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=precision))
    rows.append(jnp.stack(phases, 3))
  y = jnp.stack(rows, 3)                                  # (N, H', W', a, b, Cout)
  n, h, w = y.shape[:3]
  y = y.transpose(0, 1, 3, 2, 4, 5).reshape(n, 2 * h, 2 * w, cout)
  size = 2 * x.shape[1] + k - 2, 2 * x.shape[2] + k - 2
  return y[:, :size[0], :size[1]]


def conv_transpose_2x_reference(x, weight):
  """Reference for :func:`conv_transpose_2x`: one convolution of the zero-stuffed input
  (``lhs_dilation=2``) with the flipped kernel (the tests and ``bench conv_transpose``
  compare the two)."""
  k = weight.shape[0]
  return jax.lax.conv_general_dilated(
      x, jnp.flip(weight, (0, 1)), (1, 1), [(k - 1, k - 1)] * 2, lhs_dilation=(2, 2),
      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def modulated_conv(x: Array, weight: Array, styles: Array, *, demodulate: bool = True,
                   up: bool = False) -> Array:
  """StyleGAN2 modulated convolution (Karras et al. 2020, eq. 1-3) in activation form.

  Per-sample weights ``w'[b] = w * s[b, i]`` demodulated by
  ``d[b, o] = rsqrt(sum_{i,u,v} w'[b,u,v,i,o]^2 + 1e-8)`` equal, by linearity,
  ``conv(x * s[b], w) * d[b]``: the batch shares one ordinary convolution.

  Args:
    x: (N, H, W, Cin) activations.
    weight: (k, k, Cin, Cout), already scaled by the equalized-LR constant.
    styles: (N, Cin) modulation ``s``.
    demodulate: divide by the output std ``d`` (ToRGB uses False).
    up: 2x upsampling as rosinality does it: stride-2 transposed conv (output 2H+1), then
      the [1,3,3,1] blur with gain 4 and pad (1, 1), back to exactly 2H.
  Returns:
    (N, H', W', Cout) with H' = H or 2H.
  """
  k = weight.shape[0]
  x = x * styles[:, None, None, :].astype(x.dtype)
  w = weight.astype(x.dtype)
  if up:
    y = blur(conv_transpose_2x(x, w), (1, 1), gain=4.0)
  else:
    y = jax.lax.conv_general_dilated(
        x, w, (1, 1), [(k // 2, k // 2)] * 2,
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
  if demodulate:
    y = y * demodulation(weight, styles).astype(y.dtype)[:, None, None, :]
  return y


def demodulation(weight: Array, styles: Array) -> Array:
  """``rsqrt(sum_{i,u,v} (w[u,v,i,o] s[b,i])^2 + 1e-8)``, shape (N, Cout), in float32."""
  w2 = jnp.sum(jnp.square(weight.astype(jnp.float32)), axis=(0, 1))  # (Cin, Cout)
  s2 = jnp.square(styles.astype(jnp.float32))
  return jax.lax.rsqrt(jnp.dot(s2, w2, precision=jax.lax.Precision.HIGHEST) + DEMOD_EPS)


class ModulatedConv(nn.Module):
  """Modulated conv layer: affine style (``modulation``, bias init 1) + ``modulated_conv``.

  Params: ``weight`` (k, k, Cin, Cout) ~ N(0, 1); ``modulation/{weight,bias}``.
  """
  features: int
  kernel_size: int
  demodulate: bool = True
  up: bool = False

  @nn.compact
  def __call__(self, x: Array, w: Array) -> Array:
    cin, k = x.shape[-1], self.kernel_size
    styles = EqualDense(cin, bias_init=1.0, name="modulation")(w)
    weight = self.param("weight", nn.initializers.normal(1.0), (k, k, cin, self.features))
    weight = weight / math.sqrt(cin * k * k)
    return modulated_conv(x, weight, styles, demodulate=self.demodulate, up=self.up)


# ---------------------------------------------------------------------------- noise


class NoiseInjection(nn.Module):
  """``x + strength * noise`` with a learned scalar strength (init 0).

  ``noise`` is (N or 1, H, W, 1), broadcast over channels (and batch); None adds nothing.
  """

  @nn.compact
  def __call__(self, x: Array, noise: Array | None) -> Array:
    strength = self.param("weight", nn.initializers.zeros, ())
    if noise is None:
      return x
    return x + (strength * noise).astype(x.dtype)


# ------------------------------------------------------------------ minibatch stddev


def minibatch_stddev(x: Array, group_size: int = 4, num_channels: int = 1) -> Array:
  """Appends minibatch-stddev feature maps (StyleGAN2 D), strided grouping.

  Group ``G = min(N, group_size)``; sample ``n`` belongs to group column ``m = n mod (N/G)``.
  Per column: population std over the G samples (+1e-8 inside the sqrt), averaged over
  H, W and each of ``num_channels`` channel groups, broadcast back and concatenated as
  the last ``num_channels`` channels.

  Args:
    x: (N, H, W, C) with N divisible by min(N, group_size) and C by num_channels.
  Returns:
    (N, H, W, C + num_channels).
  """
  n, h, w, c = x.shape
  g = min(n, group_size)
  if n % g:
    raise ValueError(f"minibatch stddev: batch {n} is not divisible by group size {g}")
  f = num_channels
  y = x.astype(jnp.float32).reshape(g, n // g, h, w, f, c // f)
  y = jnp.sqrt(jnp.var(y, axis=0) + 1e-8)          # (M, H, W, F, C/F)
  y = jnp.mean(y, axis=(1, 2, 4))                   # (M, F)
  y = jnp.tile(y, (g, 1))                           # (N, F): sample n -> column n mod M
  y = jnp.broadcast_to(y[:, None, None, :], (n, h, w, f)).astype(x.dtype)
  return jnp.concatenate([x, y], axis=-1)
