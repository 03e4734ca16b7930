"""StyleGAN2 generator and residual discriminator (Karras et al. 2020), rosinality layout.

Parameter names mirror rosinality/stylegan2-pytorch so that ``convert_torch`` is a plain
renaming (plus layout transposes). Two variable collections:

* ``params``: everything trained (mapping, synthesis, D);
* ``buffers``: constants that ride along in checkpoints but are never trained: the
  generator's per-layer constant noise maps ``noise_{i}`` (1, R, R, 1) and ``w_avg`` (w_dim,).

Images are NHWC; W+ latents are (N, num_ws, w_dim) with ``num_ws = 2 log2(res) - 2``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxspatial.models import layers

Array = jax.Array
NOISE_MODES = ("const", "random", "none")


# ---------------------------------------------------------------------------- sizes


@dataclasses.dataclass(frozen=True)
class ChannelTable:
  """Channels per resolution.

  ``channel_base > 0``: stylegan2-ada's ``min(channel_base // res, channel_max)``.
  Otherwise rosinality's table: 512 up to 32 px, then ``512 * 32 / res * cm / 2`` i.e.
  256·cm at 64, 128·cm at 128, ... (cm = ``channel_multiplier``).
  """
  channel_multiplier: int = 2
  channel_base: int = 0
  channel_max: int = 512

  def __call__(self, res: int) -> int:
    if self.channel_base > 0:
      return min(self.channel_base // res, self.channel_max)
    if res <= 32:
      return 512
    return int(256 * self.channel_multiplier * 64 // res)


def log2_resolution(resolution: int) -> int:
  """log2 of a power-of-two resolution >= 4, else ValueError."""
  log = int(round(math.log2(resolution))) if resolution > 0 else -1
  if resolution < 4 or 2 ** log != resolution:
    raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
  return log


def num_ws(resolution: int) -> int:
  """Number of per-layer styles (W+ length): ``2 log2(res) - 2``."""
  return 2 * log2_resolution(resolution) - 2


def num_noises(resolution: int) -> int:
  """Number of noise inputs: ``2 log2(res) - 3``; noise i has side ``2^((i+5)//2)``."""
  return 2 * log2_resolution(resolution) - 3


def noise_resolution(i: int) -> int:
  return 2 ** ((i + 5) // 2)


# ---------------------------------------------------------------------------- generator


class MappingNetwork(nn.Module):
  """z (N, z_dim) -> w (N, w_dim): pixel norm, then ``n_mlp`` EqualDense+lrelu (lr_mul 0.01)."""
  w_dim: int
  n_mlp: int = 8
  lr_mul: float = 0.01

  @nn.compact
  def __call__(self, z: Array) -> Array:
    x = layers.pixel_norm(z.astype(jnp.float32))
    for i in range(1, self.n_mlp + 1):
      x = layers.EqualDense(self.w_dim, lr_mul=self.lr_mul, activate=True, name=f"dense_{i}")(x)
    return x


class StyledConv(nn.Module):
  """Modulated 3x3 conv (optionally 2x up) + noise + bias/lrelu."""
  features: int
  up: bool = False

  @nn.compact
  def __call__(self, x: Array, w: Array, noise: Array | None) -> Array:
    x = layers.ModulatedConv(self.features, 3, demodulate=True, up=self.up, name="conv")(x, w)
    x = layers.NoiseInjection(name="noise")(x, noise)
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    return layers.bias_act(x, bias)


class ToRGB(nn.Module):
  """1x1 modulated conv (no demodulation) to RGB + bias, plus the 2x-upsampled skip."""
  channels: int = 3

  @nn.compact
  def __call__(self, x: Array, w: Array, skip: Array | None) -> Array:
    y = layers.ModulatedConv(self.channels, 1, demodulate=False, name="conv")(x, w)
    y = y + self.param("bias", nn.initializers.zeros, (self.channels,)).astype(y.dtype)
    if skip is not None:
      y = y + layers.upsample2x(skip)
    return y


class SynthesisNetwork(nn.Module):
  """W+ (N, num_ws, w_dim) -> image (N, res, res, 3).

  Layer order (rosinality): const 4x4 -> conv1 (ws[0]) -> to_rgb1 (ws[1]); for block r:
  convs_{2r} (up, ws[2r+1]) -> convs_{2r+1} (ws[2r+2]) -> to_rgbs_{r} (ws[2r+3]).
  ``noise_mode``: "const" uses the stored ``buffers/noise_{i}``, "random" draws from the
  ``noise`` rng, "none" adds nothing; ``noise`` (a list of (N|1, R, R, 1)) overrides all.
  With ``return_features`` also returns the activations after each resolution block
  (index 0 = 4 px, then 8 px, ...), which DragGAN reads.
  """
  resolution: int
  channels: ChannelTable = ChannelTable()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, ws: Array, noise_mode: str = "const",
               noise: Sequence[Array] | None = None, return_features: bool = False):
    log_res = log2_resolution(self.resolution)
    n = ws.shape[0]
    ws = ws.astype(jnp.float32)
    noises = self._noise_inputs(n, noise_mode, noise)

    c4 = self.channels(4)
    const = self.param("const", nn.initializers.normal(1.0), (1, 4, 4, c4))
    x = jnp.broadcast_to(const, (n, 4, 4, c4)).astype(self.dtype)
    x = StyledConv(c4, name="conv1")(x, ws[:, 0], noises[0])
    skip = ToRGB(name="to_rgb1")(x, ws[:, 1], None)
    features = [x]
    for r in range(log_res - 2):
      c = self.channels(2 ** (r + 3))
      x = StyledConv(c, up=True, name=f"convs_{2 * r}")(x, ws[:, 2 * r + 1], noises[2 * r + 1])
      x = StyledConv(c, name=f"convs_{2 * r + 1}")(x, ws[:, 2 * r + 2], noises[2 * r + 2])
      skip = ToRGB(name=f"to_rgbs_{r}")(x, ws[:, 2 * r + 3], skip)
      features.append(x)
    img = skip.astype(jnp.float32)
    return (img, features) if return_features else img

  def _noise_inputs(self, n: int, mode: str, explicit: Sequence[Array] | None):
    count = num_noises(self.resolution)
    buffers = [
        self.variable("buffers", f"noise_{i}",
                      lambda i=i: jax.random.normal(
                          self.make_rng("params"),
                          (1, noise_resolution(i), noise_resolution(i), 1))).value
        for i in range(count)
    ]
    if explicit is not None:
      if len(explicit) != count:
        raise ValueError(f"expected {count} noise maps, got {len(explicit)}")
      return [jnp.asarray(e, self.dtype) for e in explicit]
    if mode == "const":
      return [b.astype(self.dtype) for b in buffers]
    if mode == "random":
      key = self.make_rng("noise")
      return [jax.random.normal(jax.random.fold_in(key, i), (n,) + b.shape[1:], self.dtype)
              for i, b in enumerate(buffers)]
    if mode == "none":
      return [None] * count
    raise ValueError(f"noise mode must be one of {NOISE_MODES}, got {mode!r}")


class Generator(nn.Module):
  """Mapping + synthesis, with truncation toward the stored ``w_avg`` and style mixing.

  Methods (use with ``module.apply(variables, ..., method=...)``):
    ``mapping(z) -> w`` (N, w_dim); ``synthesize(ws, ...) -> img``;
    ``__call__(z, truncation, noise_mode, z_mix, mix_cutoff) -> img``.
  """
  resolution: int
  z_dim: int = 512
  w_dim: int = 512
  n_mlp: int = 8
  lr_mlp: float = 0.01
  channels: ChannelTable = ChannelTable()
  dtype: Any = jnp.float32

  @property
  def num_ws(self) -> int:
    return num_ws(self.resolution)

  def setup(self):
    self.mapping_network = MappingNetwork(self.w_dim, self.n_mlp, self.lr_mlp, name="mapping")
    self.synthesis = SynthesisNetwork(self.resolution, self.channels, self.dtype,
                                      name="synthesis")
    self.w_avg = self.variable("buffers", "w_avg", jnp.zeros, (self.w_dim,))

  def mapping(self, z: Array) -> Array:
    return self.mapping_network(z)

  def truncate(self, w: Array, truncation: float | Array) -> Array:
    """``w_avg + psi (w - w_avg)`` on (..., w_dim)."""
    return self.w_avg.value + truncation * (w - self.w_avg.value)

  def synthesize(self, ws: Array, noise_mode: str = "const",
                 noise: Sequence[Array] | None = None, return_features: bool = False):
    return self.synthesis(ws, noise_mode, noise, return_features)

  def styles(self, z: Array, truncation: float | Array = 1.0, z_mix: Array | None = None,
             mix_cutoff: int | Array | None = None) -> Array:
    """z (N, z_dim) -> W+ (N, num_ws, w_dim); layers >= ``mix_cutoff`` take ``z_mix``'s w."""
    w = self.truncate(self.mapping(z), truncation)
    ws = jnp.broadcast_to(w[:, None], (w.shape[0], self.num_ws, self.w_dim))
    if z_mix is not None:
      w2 = self.truncate(self.mapping(z_mix), truncation)
      layer = jnp.arange(self.num_ws)[None, :, None]
      ws = jnp.where(layer < mix_cutoff, ws, w2[:, None])
    return ws

  def __call__(self, z: Array, truncation: float | Array = 1.0, noise_mode: str = "const",
               z_mix: Array | None = None, mix_cutoff: int | Array | None = None,
               noise: Sequence[Array] | None = None, return_features: bool = False):
    ws = self.styles(z, truncation, z_mix, mix_cutoff)
    return self.synthesize(ws, noise_mode, noise, return_features)


# ------------------------------------------------------------------------ discriminator


class ResBlock(nn.Module):
  """``(conv2_down(conv1(x)) + skip_down(x)) / sqrt(2)``, halving the resolution."""
  features: int

  @nn.compact
  def __call__(self, x: Array) -> Array:
    y = layers.EqualConv(x.shape[-1], 3, name="conv1")(x)
    y = layers.EqualConv(self.features, 3, down=True, name="conv2")(y)
    s = layers.EqualConv(self.features, 1, down=True, use_bias=False, activate=False,
                      name="skip")(x)
    return (y + s) * jnp.asarray(1 / math.sqrt(2), y.dtype)


class Discriminator(nn.Module):
  """Residual StyleGAN2 discriminator: image (N, res, res, 3) -> logits (N,).

  ``taps``: optional dict {resolution: array} added to the block outputs at that resolution
  (the ``from_rgb`` output has the full resolution; each ResBlock's output half its input).
  Zero taps leave the output unchanged, and ``jax.grad`` w.r.t. them gives dlogit/dfeature
  (GradCAM). ``return_features`` also returns {resolution: block output}.
  """
  resolution: int
  channels: ChannelTable = ChannelTable()
  mbstd_group_size: int = 4
  mbstd_num_channels: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, img: Array, taps: dict[int, Array] | None = None,
               return_features: bool = False):
    taps = taps or {}
    log_res = log2_resolution(self.resolution)
    features: dict[int, Array] = {}

    def tap(res: int, h: Array) -> Array:
      if res in taps:
        h = h + taps[res].astype(h.dtype)
      features[res] = h
      return h

    x = img.astype(self.dtype)
    x = tap(self.resolution, layers.EqualConv(self.channels(self.resolution), 1,
                                           name="from_rgb")(x))
    for n in range(1, log_res - 1):
      res_out = 2 ** (log_res - n)
      x = tap(res_out, ResBlock(self.channels(res_out), name=f"blocks_{n}")(x))
    x = layers.minibatch_stddev(x, self.mbstd_group_size, self.mbstd_num_channels)
    c4 = self.channels(4)
    x = layers.EqualConv(c4, 3, name="final_conv")(x)
    x = x.reshape(x.shape[0], -1)  # NHWC flatten; convert_torch permutes torch's NCHW rows
    x = layers.EqualDense(c4, activate=True, name="final_dense")(x)
    logits = layers.EqualDense(1, name="out")(x)[:, 0].astype(jnp.float32)
    return (logits, features) if return_features else logits
