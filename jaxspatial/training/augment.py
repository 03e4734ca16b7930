"""Differentiable augmentation equal to stylegan2-ada-pytorch's ``AugmentPipe`` (ADA).

The semantics are those of NVlabs/stylegan2-ada-pytorch ``training/augment.py`` at commit
d72cc7d (``../shared/reference/stylegan2_ada/augment/SPEC.md``): per image one geometric 3x3
inverse transform ``G_inv`` (output pixel -> input pixel, centred pixel coordinates) and one
colour 4x4 matrix ``C``, each built by composing the enabled ops in the official order, every
op gated per image by ``u < multiplier * p``. The geometry is executed as the official code
does: reflect padding by a margin common to the batch, x2 upsampling with the sym6 wavelet,
bilinear resampling with zero fill (``grid_sample``, align_corners=False) and x2 downsampling
with the same filter, so that even x-flips are not pixel permutations.

Layout is NHWC; images are nominally in [-1, 1] and nothing clips the output. Everything is
pure JAX with static shapes, so the pipe runs inside a jitted training step: the official
padding depends on the draws, so the image is reflect-padded by the largest margin the
official code can use (``W-1``, ``H-1``) and the official (smaller) padded, upsampled image is
a window of that buffer, addressed by offsets; samples outside the window read zero, as
``grid_sample`` does outside the official buffer.

``AugmentPipe("bgc")`` is the ADA default; ``AugmentPipe(xflip=1)`` one op alone. Calling the
pipe draws every random value (:meth:`AugmentPipe.draw`, the official draws in call order)
and applies them (:meth:`AugmentPipe.trace`); a test can replay recorded draws.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
F32 = jnp.float32

# upfirdn2d.setup_filter(wavelets['sym6']): the 12 float32 taps divided by their float32 sum.
_SYM6 = np.array([
    0.015404109327027373, 0.0034907120842174702, -0.11799011114819057, -0.048311742585633,
    0.4910559419267466, 0.787641141030194, 0.3379294217276218, -0.07263752278646252,
    -0.021060292512300564, 0.04472490177066578, 0.0017677118642428036, -0.007800708325034148,
], dtype=np.float32)
HZ_GEOM = (_SYM6 / _SYM6.sum(dtype=np.float32)).astype(np.float32)
HZ_PAD = len(HZ_GEOM) // 4

GEOM_OPS = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOR_OPS = ("brightness", "contrast", "lumaflip", "hue", "saturation")
UNSUPPORTED_OPS = ("imgfilter", "noise", "cutout")

_BLIT = dict(xflip=1, rotate90=1, xint=1)
_GEOM = dict(scale=1, rotate=1, aniso=1, xfrac=1)
_COLOR = dict(brightness=1, contrast=1, lumaflip=1, hue=1, saturation=1)
# train.py's augpipe_specs, the presets whose ops this port implements.
PRESETS = {
    "blit": _BLIT, "geom": _GEOM, "color": _COLOR,
    "bg": {**_BLIT, **_GEOM}, "bgc": {**_BLIT, **_GEOM, **_COLOR},
}


# ------------------------------------------------------------------ homogeneous matrices


def _matrix(rows) -> Array:
  """Stack a 2-D list of scalars / (B,) arrays into a (B, n, n) float32 batch of matrices."""
  shape = jnp.broadcast_shapes(*[jnp.shape(e) for row in rows for e in row])
  consts = {}      # one broadcast per distinct constant: fewer ops for XLA to compile

  def full(e):
    if isinstance(e, (int, float)):
      if e not in consts:
        consts[e] = jnp.full(shape, e, F32)
      return consts[e]
    return jnp.broadcast_to(jnp.asarray(e, F32), shape)

  return jnp.stack([jnp.stack([full(e) for e in row], -1) for row in rows], -2)


def translate2d(tx, ty) -> Array:
  """T(tx, ty) = [[1, 0, tx], [0, 1, ty], [0, 0, 1]]."""
  return _matrix([[1, 0, tx], [0, 1, ty], [0, 0, 1]])


def scale2d(sx, sy) -> Array:
  """S(sx, sy) = diag(sx, sy, 1)."""
  return _matrix([[sx, 0, 0], [0, sy, 0], [0, 0, 1]])


def rotate2d(theta) -> Array:
  """R(theta) = [[cos, -sin, 0], [sin, cos, 0], [0, 0, 1]] (y down: clockwise on screen)."""
  c, s = jnp.cos(theta), jnp.sin(theta)
  return _matrix([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def translate3d(tx, ty, tz) -> Array:
  """Colour offset: (r, g, b, 1) -> (r + tx, g + ty, b + tz, 1)."""
  return _matrix([[1, 0, 0, tx], [0, 1, 0, ty], [0, 0, 1, tz], [0, 0, 0, 1]])


def scale3d(sx, sy, sz) -> Array:
  """Colour scale diag(sx, sy, sz, 1)."""
  return _matrix([[sx, 0, 0, 0], [0, sy, 0, 0], [0, 0, sz, 0], [0, 0, 0, 1]])


def rotate3d(v, theta) -> Array:
  """Rodrigues rotation by theta about the unit axis v: ``v v^T (1 - cos) + I cos + [v]_x sin``."""
  vx, vy, vz = v[0], v[1], v[2]
  s, c = jnp.sin(theta), jnp.cos(theta)
  cc = 1 - c
  return _matrix([
      [vx * vx * cc + c, vx * vy * cc - vz * s, vx * vz * cc + vy * s, 0],
      [vy * vx * cc + vz * s, vy * vy * cc + c, vy * vz * cc - vx * s, 0],
      [vz * vx * cc - vy * s, vz * vy * cc + vx * s, vz * vz * cc + c, 0],
      [0, 0, 0, 1]])


def _eye(n: int, batch: int) -> Array:
  return jnp.broadcast_to(jnp.eye(n, dtype=F32), (batch, n, n))


# ------------------------------------------------------------------ sym6 resampling


def _take(x: Array, axis: int, start: int, size: int, stride: int = 1) -> Array:
  return jax.lax.slice_in_dim(x, start, start + stride * (size - 1) + 1, stride, axis)


def _pad(x: Array, axis: int, before: int, after: int) -> Array:
  pad = [(0, 0)] * x.ndim
  pad[axis] = (before, after)
  return jnp.pad(x, pad)


def _interleave(even: Array, odd: Array, axis: int) -> Array:
  """out[2m] = even[m], out[2m + 1] = odd[m] along ``axis``."""
  out = jnp.stack([even, odd], axis + 1)
  return out.reshape(even.shape[:axis] + (2 * even.shape[axis],) + even.shape[axis + 1:])


def _taps(x: Array, axis: int, coeffs, starts, size: int) -> Array:
  """``sum_r coeffs[r] x[starts[r] : starts[r] + size]`` along ``axis`` (elementwise float32)."""
  return sum(float(c) * _take(x, axis, s, size) for c, s in zip(coeffs, starts))


# The x2 resampling pair as linear maps, each with the other's structure as its transpose: the
# autodiff transposes of their strided slices (zero pads and adds of the full-size array) made
# the pipe's backward pass 9x its forward pass on CPU. Each transpose is again differentiable
# (R1 differentiates through the pipe's gradient).
_EVEN, _ODD = 2 * HZ_GEOM[1::2], 2 * HZ_GEOM[0::2]         # 2 f[2r+1], 2 f[2r], r = 0..5


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def upsample2x(x: Array, axis: int) -> Array:
  """upfirdn with up=2, padding (6, 5), gain 2 along ``axis``: with z the zero-stuffed
  signal (z[2j] = x[j], z[2j+1] = 0, zero outside), ``u[n] = 2 sum_k f[k] z[n + 5 - k]``.

  Computed polyphase: ``u[2m] = 2 sum_r f[2r+1] x[m+2-r]`` and ``u[2m+1] = 2 sum_r f[2r]
  x[m+3-r]`` (r = 0..5), elementwise float32 arithmetic.
  """
  n = x.shape[axis]
  xp = _pad(x, axis, 3, 3)                                   # xp[j + 3] = x[j]
  return _interleave(_taps(xp, axis, _EVEN, [5 - r for r in range(6)], n),
                     _taps(xp, axis, _ODD, [6 - r for r in range(6)], n), axis)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def upsample2x_transpose(u: Array, axis: int) -> Array:
  """The transpose of :func:`upsample2x`: ``x[i] = 2 sum_r f[2r+1] u[2(i-2+r)] + 2 sum_r
  f[2r] u[2(i-3+r) + 1]``, length 2n -> n (u zero outside)."""
  n = u.shape[axis] // 2
  even = _pad(_take(u, axis, 0, n, 2), axis, 2, 3)          # even[k + 2] = u[2k]
  odd = _pad(_take(u, axis, 1, n, 2), axis, 3, 2)           # odd[k + 3] = u[2k + 1]
  return _taps(even, axis, _EVEN, range(6), n) + _taps(odd, axis, _ODD, range(6), n)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def downsample2x_crop(g: Array, axis: int) -> Array:
  """upfirdn with down=2, padding -6, flip_filter (a correlation), gain 1 along ``axis``:
  ``out[i] = sum_k f[k] g[2i + 1 + k]``, length 2(n + 6) -> n."""
  n = g.shape[axis] // 2 - 2 * HZ_PAD
  return sum(float(HZ_GEOM[k]) * _take(g, axis, 1 + k, n, 2) for k in range(len(HZ_GEOM)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def downsample2x_crop_transpose(out: Array, axis: int) -> Array:
  """The transpose of :func:`downsample2x_crop`: ``g[2m] = sum_r f[2r+1] out[m-1-r]`` and
  ``g[2m+1] = sum_r f[2r] out[m-r]``, length n -> 2(n + 6) (out zero outside)."""
  n = out.shape[axis] + 2 * HZ_PAD
  op = _pad(out, axis, 6, 6)                                 # op[k + 6] = out[k]
  return _interleave(_taps(op, axis, _EVEN / 2, [5 - r for r in range(6)], n),
                     _taps(op, axis, _ODD / 2, [6 - r for r in range(6)], n), axis)


def _linear_vjp(f, f_transpose):
  """custom_vjp rules of a linear map ``f(x, axis)`` whose transpose is ``f_transpose``."""
  f.defvjp(lambda x, axis: (f(x, axis), None), lambda axis, _, ct: (f_transpose(ct, axis),))


_linear_vjp(upsample2x, upsample2x_transpose)
_linear_vjp(upsample2x_transpose, upsample2x)
_linear_vjp(downsample2x_crop, downsample2x_crop_transpose)
_linear_vjp(downsample2x_crop_transpose, downsample2x_crop)


def grid_sample_window(u: Array, px: Array, py: Array, window: tuple) -> Array:
  """Bilinear sample of ``u`` (B, Hb, Wb, C) at pixel coordinates (px, py) (B, Hs, Ws) of the
  window ``(x0, y0, width, height)`` of u, zero outside the window: grid_sample's 'zeros'
  padding, ``out = sum_{corners} (1-|px-x|)(1-|py-y|) u[y, x] [corner inside]``."""
  b, hb, wb, c = u.shape
  x0, y0, width, height = window
  ix, iy = jnp.floor(px), jnp.floor(py)
  fx, fy = px - ix, py - iy
  ix, iy = ix.astype(jnp.int32), iy.astype(jnp.int32)
  flat = u.reshape(b, hb * wb, c)
  out = 0.0
  for dy, wy in ((0, 1 - fy), (1, fy)):
    for dx, wx in ((0, 1 - fx), (1, fx)):
      xx, yy = ix + dx, iy + dy
      inside = (xx >= 0) & (xx < width) & (yy >= 0) & (yy < height)
      xs = jnp.clip(xx + x0[:, None, None], 0, wb - 1)
      ys = jnp.clip(yy + y0[:, None, None], 0, hb - 1)
      idx = (ys * wb + xs).reshape(b, -1, 1)
      val = jnp.take_along_axis(flat, idx, axis=1).reshape(px.shape + (c,))
      out = out + jnp.where(inside, wx * wy, 0.0)[..., None] * val
  return out


# ------------------------------------------------------------------ the pipe


@dataclasses.dataclass(frozen=True)
class AugmentPipe:
  """stylegan2-ada's AugmentPipe: op arguments are probability multipliers (0 = off).

  ``AugmentPipe("bgc")`` (or "blit", "geom", "color", "bg") takes a preset of train.py's
  augpipe_specs; keywords override it. Call ``pipe(images, key, p, debug_percentile=None)``
  on NHWC images; ``debug_percentile`` q in [0, 1] fixes every value as the official argument
  does (the same q-quantile for every image, post-rotation 0, gates ignored).
  """

  spec: Optional[str] = None
  xflip: float = 0
  rotate90: float = 0
  xint: float = 0
  xint_max: float = 0.125
  scale: float = 0
  rotate: float = 0
  aniso: float = 0
  xfrac: float = 0
  scale_std: float = 0.2
  rotate_max: float = 1
  aniso_std: float = 0.2
  xfrac_std: float = 0.125
  brightness: float = 0
  contrast: float = 0
  lumaflip: float = 0
  hue: float = 0
  saturation: float = 0
  brightness_std: float = 0.2
  contrast_std: float = 0.5
  hue_max: float = 1
  saturation_std: float = 1
  imgfilter: float = 0
  noise: float = 0
  cutout: float = 0

  def __post_init__(self):
    if self.spec is not None:
      if self.spec not in PRESETS:
        raise ValueError(f"unknown augment spec {self.spec!r}; known: {sorted(PRESETS)}")
      fields = {f.name: f.default for f in dataclasses.fields(self)}
      for name, mult in PRESETS[self.spec].items():
        if getattr(self, name) == fields[name]:
          object.__setattr__(self, name, float(mult))
    for name in UNSUPPORTED_OPS:
      if getattr(self, name):
        raise ValueError(f"augment op {name!r} is not implemented (only the bgc ops are)")

  def _on(self, name: str) -> bool:
    return getattr(self, name) > 0

  @property
  def geometric(self) -> bool:
    return any(self._on(n) for n in GEOM_OPS)

  @property
  def colour(self) -> bool:
    return any(self._on(n) for n in COLOR_OPS)

  def draw_specs(self, batch: int, channels: int = 3) -> list[tuple[str, str, tuple]]:
    """The official draws in call order: (label, 'rand' | 'randn', shape), value then gate."""
    b = batch
    ops = [("xflip", "xflip", "rand", (b,), (b,)), ("rotate90", "rotate90", "rand", (b,), (b,)),
           ("xint", "xint", "rand", (b, 2), (b, 1)), ("scale", "scale", "randn", (b,), (b,)),
           ("rotate", "rotate_pre", "rand", (b,), (b,)), ("aniso", "aniso", "randn", (b,), (b,)),
           ("rotate", "rotate_post", "rand", (b,), (b,)),
           ("xfrac", "xfrac", "randn", (b, 2), (b, 1)),
           ("brightness", "brightness", "randn", (b,), (b,)),
           ("contrast", "contrast", "randn", (b,), (b,)),
           ("lumaflip", "lumaflip", "rand", (b, 1, 1), (b, 1, 1)),
           ("hue", "hue", "rand", (b,), (b,)),
           ("saturation", "saturation", "randn", (b, 1, 1), (b, 1, 1))]
    specs = []
    for op, label, sampler, vshape, gshape in ops:
      if not self._on(op) or (op in ("hue", "saturation") and channels == 1):
        continue
      specs += [(f"{label}.value", sampler, vshape), (f"{label}.gate", "rand", gshape)]
    return specs

  def draw(self, key: Array, batch: int, channels: int = 3) -> dict[str, Array]:
    """Every random value of one call: U[0, 1) or N(0, 1) float32, keyed by official label."""
    specs = self.draw_specs(batch, channels)
    keys = jax.random.split(key, max(len(specs), 1))
    return {label: (jax.random.uniform if sampler == "rand" else jax.random.normal)(k, shape, F32)
            for k, (label, sampler, shape) in zip(keys, specs)}

  def __call__(self, images: Array, key: Array, p, debug_percentile=None) -> Array:
    """Augment NHWC ``images`` with probability ``p`` (a scalar, traced or not)."""
    b, _, _, c = images.shape
    return self.trace(images, self.draw(key, b, c), p, debug_percentile)["out"]

  def trace(self, images: Array, draws: dict, p, debug_percentile=None) -> dict[str, Array]:
    """Apply given draws: ``out`` and the intermediates ``geom`` (after the geometric stage),
    ``ginv``, ``theta``, ``pad`` (mx0, mx1, my0, my1) and ``C`` of the enabled stages."""
    images = jnp.asarray(images, F32)
    p = jnp.asarray(p, F32)
    q = None if debug_percentile is None else jnp.asarray(debug_percentile, F32)
    b, h, w, c = images.shape
    res = {}
    if self.geometric:
      g_inv = self.geometric_matrix(draws, p, q, b, w, h)
      images, res = _execute_geometry(images, g_inv)
      res["geom"] = images
    if self.colour:
      mat = self.colour_matrix(draws, p, q, b, c)
      images = _apply_colour(images, mat)
      res["C"] = mat
    res["out"] = images
    return res

  # -- parameters

  def _gated(self, draws, label, mult, p, neutral, transform, debug_value, q):
    """The official value/gate/debug triple: ``v = transform(draw)`` where ``gate < mult * p``,
    else ``neutral``; with debug_percentile q, ``debug_value(q)`` for every image."""
    value = transform(draws[f"{label}.value"])
    value = jnp.where(draws[f"{label}.gate"] < jnp.float32(mult) * p, value, neutral)
    if q is not None:
      value = jnp.broadcast_to(debug_value(q), value.shape).astype(F32)
    return value

  def geometric_matrix(self, draws, p, q, batch, width, height) -> Array:
    """G_inv = I @ xflip @ rotate90 @ xint @ scale @ rotate @ aniso @ rotate @ xfrac (SPEC 2.2)."""
    g = _eye(3, batch)
    if self._on("xflip"):
      i = self._gated(draws, "xflip", self.xflip, p, 0.0, _floor_times(2), _floor_times(2), q)
      g = g @ scale2d(1 - 2 * i, 1)
    if self._on("rotate90"):
      i = self._gated(draws, "rotate90", self.rotate90, p, 0.0, _floor_times(4), _floor_times(4), q)
      g = g @ rotate2d(np.float32(np.pi / 2) * i)
    if self._on("xint"):
      t = self._gated(draws, "xint", self.xint, p, 0.0, _symmetric(self.xint_max),
                      _symmetric(self.xint_max), q)
      g = g @ translate2d(-jnp.round(t[:, 0] * width), -jnp.round(t[:, 1] * height))
    if self._on("scale"):
      s = self._gated(draws, "scale", self.scale, p, 1.0, _log2_normal(self.scale_std),
                      _log2_quantile(self.scale_std), q)
      g = g @ scale2d(1 / s, 1 / s)
    p_rot = 1 - jnp.sqrt(jnp.clip(1 - jnp.float32(self.rotate) * p, 0, 1))
    angle = _angle(self.rotate_max)
    if self._on("rotate"):
      theta = self._gated(draws, "rotate_pre", 1.0, p_rot, 0.0, angle, angle, q)
      g = g @ rotate2d(theta)
    if self._on("aniso"):
      s = self._gated(draws, "aniso", self.aniso, p, 1.0, _log2_normal(self.aniso_std),
                      _log2_quantile(self.aniso_std), q)
      g = g @ scale2d(1 / s, s)
    if self._on("rotate"):
      theta = self._gated(draws, "rotate_post", 1.0, p_rot, 0.0, angle, jnp.zeros_like, q)
      g = g @ rotate2d(theta)
    if self._on("xfrac"):
      t = self._gated(draws, "xfrac", self.xfrac, p, 0.0, _normal(self.xfrac_std),
                      _quantile(self.xfrac_std), q)
      g = g @ translate2d(-t[:, 0] * width, -t[:, 1] * height)
    return g

  def colour_matrix(self, draws, p, q, batch, channels) -> Array:
    """C = saturation @ hue @ lumaflip @ contrast @ brightness (SPEC 2.4), v = (1,1,1,0)/sqrt 3."""
    mat = _eye(4, batch)
    v = np.array([1, 1, 1, 0], np.float32) / np.float32(np.sqrt(3))
    vv = jnp.asarray(np.outer(v, v))
    if self._on("brightness"):
      b = self._gated(draws, "brightness", self.brightness, p, 0.0, _normal(self.brightness_std),
                      _quantile(self.brightness_std), q)
      mat = translate3d(b, b, b) @ mat
    if self._on("contrast"):
      s = self._gated(draws, "contrast", self.contrast, p, 1.0, _log2_normal(self.contrast_std),
                      _log2_quantile(self.contrast_std), q)
      mat = scale3d(s, s, s) @ mat
    if self._on("lumaflip"):
      i = self._gated(draws, "lumaflip", self.lumaflip, p, 0.0, _floor_times(2), _floor_times(2), q)
      mat = (jnp.eye(4, dtype=F32) - 2 * vv * i) @ mat
    if self._on("hue") and channels > 1:
      angle = _angle(self.hue_max)
      theta = self._gated(draws, "hue", self.hue, p, 0.0, angle, angle, q)
      mat = rotate3d(jnp.asarray(v), theta) @ mat
    if self._on("saturation") and channels > 1:
      s = self._gated(draws, "saturation", self.saturation, p, 1.0,
                      _log2_normal(self.saturation_std), _log2_quantile(self.saturation_std), q)
      mat = (vv + (jnp.eye(4, dtype=F32) - vv) * s) @ mat
    return mat


# Value maps of the official ops: a draw (U[0,1) or N(0,1)) or a debug percentile q -> value.
def _floor_times(k: int):
  return lambda u: jnp.floor(u * k)


def _symmetric(limit: float):
  return lambda u: (u * 2 - 1) * jnp.float32(limit)


def _angle(limit: float):
  return lambda u: (u * 2 - 1) * jnp.float32(np.pi) * jnp.float32(limit)


def _normal(std: float):
  return lambda n: n * jnp.float32(std)


def _log2_normal(std: float):
  return lambda n: jnp.exp2(n * jnp.float32(std))


def _quantile(std: float):
  return lambda q: _erfinv2(q) * jnp.float32(std)


def _log2_quantile(std: float):
  return lambda q: jnp.exp2(_erfinv2(q) * jnp.float32(std))


def _erfinv2(q: Array) -> Array:
  """The official debug quantile ``erfinv(2q - 1)`` (that of N(0, 1/2), not of N(0, 1))."""
  return jax.scipy.special.erfinv(q * 2 - 1)


def padding_margin(g_inv: Array, width: int, height: int) -> Array:
  """The batch's reflect padding (mx0, my0, mx1, my1): the corners (+-cx, +-cy) mapped by
  G_inv, ``ceil(clip(max(-x', -y', x', y') + 2 Hz_pad - (cx, cy), 0, (W-1, H-1)))`` over the
  batch, cx = (W-1)/2, cy = (H-1)/2."""
  cx, cy = (width - 1) / 2, (height - 1) / 2
  corners = jnp.asarray([[-cx, cx, cx, -cx], [-cy, -cy, cy, cy], [1, 1, 1, 1]], F32)
  cp = g_inv @ corners                                            # (B, 3, 4)
  xy = jnp.transpose(cp[:, :2, :], (1, 0, 2)).reshape(2, -1)
  margin = jnp.concatenate([-xy, xy]).max(axis=1)
  margin = margin + jnp.asarray([HZ_PAD * 2 - cx, HZ_PAD * 2 - cy] * 2, F32)
  margin = jnp.clip(margin, 0, jnp.asarray([width - 1, height - 1] * 2, F32))
  return jnp.ceil(margin).astype(jnp.int32)


def sampling_theta(g_inv: Array, pad: Array, width: int, height: int) -> Array:
  """affine_grid's theta (B, 2, 3): G_inv re-centred for the asymmetric pad, conjugated to the
  x2 upsampled pixel grid and normalised to the upsampled image (Hu, Wu) and the output canvas
  (Hs, Ws) = 2(H + 6, W + 6): ``S(2/Wu, 2/Hu) T(-1/2) S(2) T((mx0-mx1)/2, (my0-my1)/2) G_inv
  S(1/2) T(1/2) S(Ws/2, Hs/2)``."""
  mx0, my0, mx1, my1 = (pad[i].astype(F32) for i in range(4))
  g = translate2d((mx0 - mx1) / 2, (my0 - my1) / 2) @ g_inv
  g = scale2d(2, 2) @ g @ scale2d(0.5, 0.5)
  g = translate2d(-0.5, -0.5) @ g @ translate2d(0.5, 0.5)
  wu = 2 * (width + mx0 + mx1)
  hu = 2 * (height + my0 + my1)
  ws, hs = 2 * (width + 2 * HZ_PAD), 2 * (height + 2 * HZ_PAD)
  g = scale2d(2 / wu, 2 / hu) @ g @ scale2d(ws / 2, hs / 2)
  return g[:, :2, :]


def _execute_geometry(images: Array, g_inv: Array) -> tuple[Array, dict]:
  """Pad, upsample, resample with theta, downsample (SPEC 2.3); returns the image and the
  intermediates. The buffer is padded by (H-1, W-1), the official window inside it starts at
  (W-1-mx0, H-1-my0)."""
  b, h, w, c = images.shape
  pad = padding_margin(g_inv, w, h)
  theta = sampling_theta(g_inv, pad, w, h)
  mx0, my0, mx1, my1 = pad[0], pad[1], pad[2], pad[3]
  buf = jnp.pad(images, ((0, 0), (h - 1, h - 1), (w - 1, w - 1), (0, 0)), mode="reflect")
  buf = upsample2x(upsample2x(buf, 2), 1)
  hs, ws = 2 * (h + 2 * HZ_PAD), 2 * (w + 2 * HZ_PAD)
  xn = (2 * jnp.arange(ws, dtype=F32) + 1) / ws - 1
  yn = (2 * jnp.arange(hs, dtype=F32) + 1) / hs - 1
  t = theta[:, :, :, None, None]
  gx = t[:, 0, 0] * xn[None, None, :] + t[:, 0, 1] * yn[None, :, None] + t[:, 0, 2]
  gy = t[:, 1, 0] * xn[None, None, :] + t[:, 1, 1] * yn[None, :, None] + t[:, 1, 2]
  wu, hu = 2 * (w + mx0 + mx1), 2 * (h + my0 + my1)
  px = ((gx + 1) * wu.astype(F32) - 1) / 2
  py = ((gy + 1) * hu.astype(F32) - 1) / 2
  window = (jnp.broadcast_to(2 * (w - 1 - mx0), (b,)), jnp.broadcast_to(2 * (h - 1 - my0), (b,)),
            wu, hu)
  out = grid_sample_window(buf, px, py, window)
  out = downsample2x_crop(downsample2x_crop(out, 2), 1)
  return out, {"ginv": g_inv, "theta": theta, "pad": jnp.stack([mx0, mx1, my0, my1])}


def _apply_colour(images: Array, mat: Array) -> Array:
  """rgb' = C[:3, :3] rgb + C[:3, 3]; one channel: x' = x sum(c[:3]) + c[3], c the mean row."""
  if images.shape[-1] == 1:
    row = mat[:, :3, :].mean(axis=1)
    row = row[:, None, None, None, :]
    return images * row[..., :3].sum(-1, keepdims=True) + row[..., 3:]
  out = jnp.einsum("bij,bhwj->bhwi", mat[:, :3, :3], images, precision=jax.lax.Precision.HIGHEST)
  return out + mat[:, None, None, :3, 3]


def ada_adjust(p, sign_sum, sign_count, target: float, batch_size: int, interval: int,
               speed_kimg: float) -> Array:
  """One ADA update: ``p <- max(p + sign(r_t - target) * batch * interval / (speed_kimg * 1000),
  0)`` with ``r_t = sign_sum / sign_count`` the mean sign of D's real logits since the last
  update; the step is rounded to float32 before the float32 add, as the official float32 buffer
  does. No upper clamp."""
  step = np.float32(batch_size * interval / (speed_kimg * 1000))
  r_t = jnp.asarray(sign_sum, F32) / jnp.asarray(sign_count, F32)
  adjust = jnp.sign(r_t - jnp.float32(target)) * step
  return jnp.maximum(jnp.asarray(p, F32) + adjust, 0.0).astype(F32)


# ------------------------------------------------------------------ ADA in the training step

KINDS = ("ada", "fixed", "none")


def default_config():
  """``config.augment``: ``kind`` none | fixed (p constant) | ada (p adjusted); ``p`` the
  (initial) probability; ``target``, ``speed_kimg`` (images for p to move by 1, in thousands)
  and ``interval`` (steps between updates) of the ADA heuristic; ``spec`` a preset name."""
  import ml_collections
  return ml_collections.ConfigDict(dict(kind="none", p=0.0, target=0.6, speed_kimg=500.0,
                                        interval=4, spec="bgc"))


def augment_config(config):
  """The run's ``augment`` section (a config saved before it existed: no augmentation)."""
  return config.get("augment") or default_config()


def pipe_from_config(config) -> Optional[AugmentPipe]:
  """The pipe D's inputs go through, or None for ``augment.kind = none``."""
  aug = augment_config(config)
  return None if aug.kind == "none" else AugmentPipe(aug.spec)


def init_state(config) -> dict[str, Array]:
  """ADA's part of the train state: ``p`` (from ``augment.p``; 0 without augmentation) and
  the sum and count of D's real-logit signs since the last update."""
  aug = augment_config(config)
  p = aug.p if aug.kind != "none" else 0.0
  return {"p": jnp.asarray(p, F32), "sign_sum": jnp.zeros((), F32),
          "sign_count": jnp.zeros((), F32)}


def sign_statistics(logits: Array) -> tuple[Array, Array]:
  """(sum, count) of ``sign(logits)`` over the finite logits: a batch whose D output is NaN
  (a fault the step survives, ``state.finite_gradients``) neither counts nor poisons p."""
  finite = jnp.isfinite(logits)
  return (jnp.where(finite, jnp.sign(logits), 0).astype(F32).sum(),
          finite.astype(F32).sum())


def next_state(config, state: dict, sign_sum: Array, sign_count: Array,
               step: Array) -> tuple[dict, dict]:
  """After training step ``step`` (counted from 0): the signs of this step's real logits (D's
  main pass, and R1's when it ran, as the official Collector sees two reports) join the
  accumulator; every ``interval`` steps ``ada`` moves p (:func:`ada_adjust`) and the
  accumulator restarts (p stays where no sign was counted). Returns the new state and the metrics ``augment/p`` (p after the step),
  ``augment/r_t`` and ``augment/signs_counted`` (the accumulated statistic of this step)."""
  aug = augment_config(config)
  total, count = state["sign_sum"] + sign_sum, state["sign_count"] + sign_count
  update = (step + 1) % aug.interval == 0
  p = state["p"]
  if aug.kind == "ada":
    p = jnp.where(update & (count > 0), ada_adjust(p, total, count, aug.target,
                                                   config.batch_size, aug.interval,
                                                   aug.speed_kimg), p)
  zero = jnp.zeros((), F32)
  new = {"p": p, "sign_sum": jnp.where(update, zero, total),
         "sign_count": jnp.where(update, zero, count)}
  metrics = {"augment/p": p, "augment/r_t": total / jnp.maximum(count, 1.0),
             "augment/signs_counted": count}
  return new, metrics
