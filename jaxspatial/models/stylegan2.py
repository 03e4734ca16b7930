"""StyleGAN2 generator and residual discriminator (Karras et al. 2020), rosinality layout.

Parameter names mirror rosinality/stylegan2-pytorch so that ``convert_torch`` is a plain
renaming (plus layout transposes). Two variable collections:

* ``params``: everything trained (mapping, synthesis, D);
* ``buffers``: constants that ride along in checkpoints but are never trained: the
  generator's per-layer constant noise maps ``noise_{i}`` (1, R, R, 1) and ``w_avg`` (w_dim,).

Images are NHWC; W+ latents are (N, num_ws, w_dim) with ``num_ws = 2 log2(res) - 2``.

The module is one file of ~400 lines on purpose: the channel table, the one synthesis loop that
SSN and SpatialGAN plug their layers into, G and D are the network the rosinality rule table
(:mod:`jaxspatial.convert.rosinality`) names, and they change together with it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

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


def mixed_precision_threshold(resolution: int, mixed_precision_res: int) -> int:
  """The lowest block resolution that computes in bfloat16 when the top
  ``mixed_precision_res`` resolutions do: stylegan2-ada's
  ``fp16_resolution = max(2 ** (log2(res) + 1 - num_fp16_res), 8)`` (``2 * resolution``,
  i.e. no block, for 0). The 4 px synthesis block and D's 4 px epilogue never qualify."""
  return max(2 ** (log2_resolution(resolution) + 1 - mixed_precision_res), 8)


def block_dtype(block: int, resolution: int, dtype: Any, mixed_precision_res: int) -> Any:
  """The compute dtype of the ``block`` px block of a ``resolution`` px network: bfloat16 for
  the top ``mixed_precision_res`` resolutions (:func:`mixed_precision_threshold`), ``dtype``
  (``model.compute_dtype``) below. D's block ``block`` is the one whose input is ``block`` px."""
  if block >= mixed_precision_threshold(resolution, mixed_precision_res):
    return jnp.bfloat16
  return dtype


# ---------------------------------------------------------------------------- generator


class MappingNetwork(nn.Module):
  """z (N, z_dim) [, labels (N, c_dim)] -> w (N, w_dim).

  ``x = pixel_norm(z)``; a conditional mapping (``c_dim > 0``, stylegan2-ada) appends
  ``pixel_norm(embed(labels))``, ``embed`` a linear EqualDense to ``w_dim`` (lr 1), the two
  normalised separately, z first. Then ``n_mlp`` EqualDense+lrelu (``lr_mul``). With
  ``z=None`` (D's label mapping) x is the label embedding alone.
  """
  w_dim: int
  n_mlp: int = 8
  lr_mul: float = 0.01
  c_dim: int = 0

  @nn.compact
  def __call__(self, z: Array | None, labels: Array | None = None) -> Array:
    parts = [] if z is None else [layers.pixel_norm(z.astype(jnp.float32))]
    if self.c_dim:
      if labels is None:
        raise ValueError(f"a conditional mapping (c_dim {self.c_dim}) needs labels")
      embed = layers.EqualDense(self.w_dim, name="embed")(labels.astype(jnp.float32))
      parts.append(layers.pixel_norm(embed))
    x = jnp.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]
    for i in range(1, self.n_mlp + 1):
      x = layers.EqualDense(self.w_dim, lr_mul=self.lr_mul, activate=True, name=f"dense_{i}")(x)
    return x


class StyledConv(nn.Module):
  """Modulated 3x3 conv (optionally 2x up) + noise + bias/lrelu, clipped to +-``clamp``
  (stylegan2-ada's ``conv_clamp``; None: no clip).

  ``conv`` builds the modulated conv: ``conv(features, kernel_size, demodulate=, up=,
  name=)`` applied as ``conv(x, style)``. StyleGAN2's is :class:`layers.ModulatedConv`
  (``style`` = w (N, w_dim)); SSN plugs in the spatially modulated conv (a style grid),
  SpatialGAN's indoor encoding its heatmap-weighted one.
  """
  features: int
  up: bool = False
  conv: Callable[..., nn.Module] = layers.ModulatedConv
  clamp: float | None = None

  @nn.compact
  def __call__(self, x: Array, style: Any, noise: Array | None) -> Array:
    x = self.conv(self.features, 3, demodulate=True, up=self.up, name="conv")(x, style)
    x = layers.NoiseInjection(name="noise")(x, noise)
    bias = self.param("bias", nn.initializers.zeros, (self.features,))
    return layers.bias_act(x, bias, clamp=self.clamp)


class ToRGB(nn.Module):
  """1x1 modulated conv (no demodulation) to RGB + bias (clipped to +-``clamp``) in the
  block's dtype, plus the 2x-upsampled skip in the skip's dtype: the image accumulates in the
  dtype the synthesis loop starts it in, whatever the blocks compute in (float32 under
  ``mixed_precision_res``: stylegan2-ada casts each ToRGB output to float32 before the sum).
  ``conv`` as in :class:`StyledConv`."""
  channels: int = 3
  conv: Callable[..., nn.Module] = layers.ModulatedConv
  clamp: float | None = None

  @nn.compact
  def __call__(self, x: Array, style: Any, skip: Array | None) -> Array:
    y = self.conv(self.channels, 1, demodulate=False, up=False, name="conv")(x, style)
    y = y + self.param("bias", nn.initializers.zeros, (self.channels,)).astype(y.dtype)
    if self.clamp is not None:
      y = jnp.clip(y, -self.clamp, self.clamp)
    if skip is not None:
      y = y.astype(skip.dtype) + layers.upsample2x(skip)
    return y


ConvLayer = Callable[[Array, Any, "Array | None"], Array]
"""``(x, style, noise) -> x``: one styled conv of the synthesis loop."""
RGBLayer = Callable[[Array, Any, "Array | None"], Array]
"""``(x, style, skip) -> skip``: one ToRGB of the synthesis loop."""


class SynthesisNetwork(nn.Module):
  """W+ (N, num_ws, ...) -> image (N, res, res, 3): the synthesis loop of every family.

  Layer order (rosinality): const 4x4 -> conv1 (ws[0]) -> to_rgb1 (ws[1]); for block r:
  convs_{2r} (up, ws[2r+1]) -> convs_{2r+1} (ws[2r+2]) -> to_rgbs_{r} (ws[2r+3]).
  ``noise_mode``: "const" uses the stored ``buffers/noise_{i}``, "random" draws from the
  ``noise`` rng, "none" adds nothing; ``noise`` (a list of (N|1, R, R, 1)) overrides all.
  With ``return_features`` also returns the activations after each resolution block
  (index 0 = 4 px, then 8 px, ...), which DragGAN reads.

  Families plug their layers into :meth:`layers` (the loop itself): SSN overrides
  :meth:`modulated_conv` (one style grid per layer), SpatialGAN passes ``conv``/``to_rgb``
  factories that read its heatmaps. ``conv_clamp`` (stylegan2-ada) clips every conv and
  ToRGB output of the default layers to +-conv_clamp.

  Mixed precision (stylegan2-ada's ``num_fp16_res``): the blocks of the top
  ``mixed_precision_res`` resolutions compute in bfloat16, the rest in ``dtype``
  (:func:`block_dtype`); each block casts its input activations to its dtype on entry, and
  the image sums in ``dtype`` (:class:`ToRGB`), float32 when only the top blocks are bfloat16.
  """
  resolution: int
  channels: ChannelTable = ChannelTable()
  dtype: Any = jnp.float32
  conv_clamp: float | None = None
  mixed_precision_res: int = 0

  @nn.compact
  def __call__(self, ws: Array, noise_mode: str = "const",
               noise: Sequence[Array] | None = None, return_features: bool = False):
    return self.layers(ws, noise_mode, noise, return_features)

  def block_dtype(self, block: int) -> Any:
    """The compute dtype of the ``block`` px block (:func:`block_dtype`)."""
    return block_dtype(block, self.resolution, self.dtype, self.mixed_precision_res)

  def modulated_conv(self) -> Callable[..., nn.Module]:
    """The modulated conv of every StyledConv and ToRGB (see :class:`StyledConv`)."""
    return layers.ModulatedConv

  def styled_conv(self, name: str, block: int, features: int, up: bool) -> ConvLayer:
    """The conv called ``name`` of the ``block`` px block."""
    return StyledConv(features, up=up, conv=self.modulated_conv(), clamp=self.conv_clamp,
                      name=name)

  def to_rgb(self, name: str, block: int) -> RGBLayer:
    """The ToRGB called ``name`` of the ``block`` px block."""
    return ToRGB(conv=self.modulated_conv(), clamp=self.conv_clamp, name=name)

  def layers(self, ws: Array, noise_mode: str, noise: Sequence[Array] | None,
             return_features: bool,
             styled_conv: Callable[[str, int, int, bool], ConvLayer] | None = None,
             to_rgb: Callable[[str, int], RGBLayer] | None = None):
    """The synthesis loop; ``styled_conv(name, block, features, up)`` and
    ``to_rgb(name, block)`` build its layers (default: :meth:`styled_conv`, :meth:`to_rgb`).
    Layer i is styled by ``ws[:, i]``."""
    styled_conv = styled_conv or self.styled_conv
    to_rgb = to_rgb or self.to_rgb
    log_res = log2_resolution(self.resolution)
    n = ws.shape[0]
    ws = ws.astype(jnp.float32)
    noises = self._noise_inputs(n, noise_mode, noise)

    c4 = self.channels(4)
    const = self.param("const", nn.initializers.normal(1.0), (1, 4, 4, c4))
    x = jnp.broadcast_to(const, (n, 4, 4, c4)).astype(self.block_dtype(4))
    x = styled_conv("conv1", 4, c4, False)(x, ws[:, 0], noises[0])
    skip = to_rgb("to_rgb1", 4)(x, ws[:, 1], None).astype(self.dtype)
    features = [x]
    for r in range(log_res - 2):
      block = 2 ** (r + 3)
      c = self.channels(block)
      x = x.astype(self.block_dtype(block))
      x = styled_conv(f"convs_{2 * r}", block, c, True)(x, ws[:, 2 * r + 1], noises[2 * r + 1])
      x = styled_conv(f"convs_{2 * r + 1}", block, c, False)(x, ws[:, 2 * r + 2],
                                                            noises[2 * r + 2])
      skip = to_rgb(f"to_rgbs_{r}", block)(x, ws[:, 2 * r + 3], skip)
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
    if mode == "random":   # one draw split into the maps: one threefry kernel, not one per map
      sizes = [n * b.shape[1] * b.shape[2] for b in buffers]
      flat = jax.random.normal(self.make_rng("noise"), (sum(sizes),), self.dtype)
      return [part.reshape((n,) + b.shape[1:])
              for part, b in zip(jnp.split(flat, np.cumsum(sizes)[:-1]), buffers)]
    if mode == "none":
      return [None] * count
    raise ValueError(f"noise mode must be one of {NOISE_MODES}, got {mode!r}")


def mix_layers(ws: Array, w2: Array, cutoff: int | Array) -> Array:
  """Style mixing: layer ``i`` of W+ ``ws`` (N, num_ws, ...) takes ``w2`` (N, ...) for
  ``i >= cutoff`` (``cutoff = num_ws``: no mixing). The one implementation, also behind
  the training step's random cutoff (:func:`jaxspatial.training.gan_step.mix_styles`)."""
  layer = jnp.arange(ws.shape[1]).reshape((1, ws.shape[1]) + (1,) * (ws.ndim - 2))
  return jnp.where(layer < cutoff, ws, jnp.broadcast_to(w2[:, None], ws.shape))


class Generator(nn.Module):
  """Mapping + synthesis, with truncation toward the stored ``w_avg``.

  Methods (use with ``module.apply(variables, ..., method=...)``):
    ``mapping(z[, labels]) -> w`` (N, w_dim); ``styles(z, truncation, z_mix, mix_cutoff)
    -> W+``; ``synthesize(ws, ...) -> img``; ``__call__(z, truncation, noise_mode, ...) -> img``.
  Other families subclass it and override ``make_synthesis`` (and ``mapping``/``synthesize``
  where their inputs differ). stylegan2-ada switches: ``c_dim > 0`` conditions the mapping on
  labels (N, c_dim); ``conv_clamp`` clips the synthesis convs; ``truncation_cutoff`` limits
  truncation to the first layers; ``mixed_precision_res`` computes the top resolutions of the
  synthesis in bfloat16 (:class:`SynthesisNetwork`; the mapping stays float32).
  """
  resolution: int
  z_dim: int = 512
  w_dim: int = 512
  n_mlp: int = 8
  lr_mlp: float = 0.01
  channels: ChannelTable = ChannelTable()
  dtype: Any = jnp.float32
  c_dim: int = 0
  conv_clamp: float | None = None
  mixed_precision_res: int = 0

  @property
  def num_ws(self) -> int:
    return num_ws(self.resolution)

  def setup(self):
    self.mapping_network = MappingNetwork(self.w_dim, self.n_mlp, self.lr_mlp, self.c_dim,
                                          name="mapping")
    self.synthesis = self.make_synthesis()
    self.w_avg = self.variable("buffers", "w_avg", jnp.zeros, (self.w_dim,))

  def make_synthesis(self) -> SynthesisNetwork:
    """The synthesis network (named "synthesis"); families return their subclass."""
    return SynthesisNetwork(self.resolution, self.channels, self.dtype, self.conv_clamp,
                            self.mixed_precision_res, name="synthesis")

  def mapping(self, z: Array, labels: Array | None = None) -> Array:
    return self.mapping_network(z, labels)

  def truncate(self, w: Array, truncation: float | Array,
               cutoff: int | Array | None = None) -> Array:
    """``w_avg + psi (w - w_avg)`` on (..., w_dim); with ``cutoff`` (W+ input (N, num_ws,
    ...)) only on the layers ``< cutoff``, as stylegan2-ada's ``truncation_cutoff``."""
    t = self.w_avg.value + truncation * (w - self.w_avg.value)
    if cutoff is None:
      return t
    layer = jnp.arange(w.shape[1]).reshape((1, w.shape[1]) + (1,) * (w.ndim - 2))
    return jnp.where(layer < cutoff, t, w)

  def synthesize(self, ws: Array, noise_mode: str = "const",
                 noise: Sequence[Array] | None = None, return_features: bool = False):
    return self.synthesis(ws, noise_mode, noise, return_features)

  def styles(self, z: Array, truncation: float | Array = 1.0, z_mix: Array | None = None,
             mix_cutoff: int | Array | None = None, *,
             truncation_cutoff: int | Array | None = None, **mapping_inputs: Any) -> Array:
    """z -> W+ (N, num_ws, ...): w for every layer, layers >= ``mix_cutoff`` taking
    ``z_mix``'s (:func:`mix_layers`), truncated (below ``truncation_cutoff`` only, if
    given). ``mapping_inputs`` go to ``mapping`` (``labels``; SpatialGAN: ``heatmaps``)."""
    w = self.mapping(z, **mapping_inputs)
    ws = jnp.broadcast_to(w[:, None], (w.shape[0], self.num_ws) + w.shape[1:])
    if z_mix is not None:
      ws = mix_layers(ws, self.mapping(z_mix, **mapping_inputs), mix_cutoff)
    return self.truncate(ws, truncation, truncation_cutoff)

  def __call__(self, z: Array, truncation: float | Array = 1.0, noise_mode: str = "const",
               noise: Sequence[Array] | None = None, return_features: bool = False,
               labels: Array | None = None, truncation_cutoff: int | Array | None = None):
    ws = self.styles(z, truncation, truncation_cutoff=truncation_cutoff,
                     **({} if labels is None else {"labels": labels}))
    return self.synthesize(ws, noise_mode, noise, return_features)


# ------------------------------------------------------------------------ discriminator


class ResBlock(nn.Module):
  """``(conv2_down(conv1(x)) + skip_down(x)) / sqrt(2)``, halving the resolution; conv
  outputs clipped to ``clamp`` (stylegan2-ada's ``conv_clamp * sqrt(1/2)`` on conv2 after
  its ``sqrt(1/2)`` gain is the same clip before the division)."""
  features: int
  clamp: float | None = None

  @nn.compact
  def __call__(self, x: Array) -> Array:
    y = layers.EqualConv(x.shape[-1], 3, clamp=self.clamp, name="conv1")(x)
    y = layers.EqualConv(self.features, 3, down=True, clamp=self.clamp, name="conv2")(y)
    s = layers.EqualConv(self.features, 1, down=True, use_bias=False, activate=False,
                      name="skip")(x)
    return (y + s) * jnp.asarray(1 / math.sqrt(2), y.dtype)


class Discriminator(nn.Module):
  """Residual StyleGAN2 discriminator: image (N, res, res, 3) -> logits (N,).

  ``taps``: optional dict {resolution: array} added to the block outputs at that resolution
  (the ``from_rgb`` output has the full resolution; each ResBlock's output half its input).
  Zero taps leave the output unchanged, and ``jax.grad`` w.r.t. them gives dlogit/dfeature
  (GradCAM). ``return_features`` also returns {resolution: block output}.

  stylegan2-ada extensions: ``conv_clamp`` clips every conv output except the skips;
  ``mixed_precision_res`` computes ``from_rgb`` and the blocks whose input is one of the top
  resolutions in bfloat16 (:func:`block_dtype`; each block casts its input on entry), the
  4 px epilogue (minibatch stddev, final conv and dense, logits) in ``dtype``; a conditional
  D (``c_dim > 0``) maps ``labels`` (N, c_dim) through its own :class:`MappingNetwork`
  (``mapping_layers`` deep, no z) to ``cmap`` (N, cmap_dim) and projects
  (:func:`projected_logits`; ``cmap_dim`` 0: the 4 px width).
  """
  resolution: int
  channels: ChannelTable = ChannelTable()
  mbstd_group_size: int = 4
  mbstd_num_channels: int = 1
  dtype: Any = jnp.float32
  conv_clamp: float | None = None
  mixed_precision_res: int = 0
  c_dim: int = 0
  cmap_dim: int = 0
  mapping_layers: int = 8
  lr_mlp: float = 0.01

  @nn.compact
  def __call__(self, img: Array, taps: dict[int, Array] | None = None,
               return_features: bool = False, labels: Array | None = None):
    taps = taps or {}
    log_res = log2_resolution(self.resolution)
    features: dict[int, Array] = {}

    def tap(res: int, h: Array) -> Array:
      if res in taps:
        h = h + taps[res].astype(h.dtype)
      features[res] = h
      return h

    def dtype_of(res: int):
      return block_dtype(res, self.resolution, self.dtype, self.mixed_precision_res)

    x = img.astype(dtype_of(self.resolution))
    clamp = self.conv_clamp
    x = tap(self.resolution, layers.EqualConv(self.channels(self.resolution), 1, clamp=clamp,
                                              name="from_rgb")(x))
    for n in range(1, log_res - 1):
      res_out = 2 ** (log_res - n)
      x = x.astype(dtype_of(2 * res_out))
      x = tap(res_out, ResBlock(self.channels(res_out), clamp, name=f"blocks_{n}")(x))
    x = layers.minibatch_stddev(x.astype(self.dtype), self.mbstd_group_size,
                                self.mbstd_num_channels)
    c4 = self.channels(4)
    x = layers.EqualConv(c4, 3, clamp=clamp, name="final_conv")(x)
    x = x.reshape(x.shape[0], -1)  # NHWC flatten; convert_torch permutes torch's NCHW rows
    x = layers.EqualDense(c4, activate=True, name="final_dense")(x)
    if self.c_dim:
      cmap_dim = self.cmap_dim or c4
      cmap = MappingNetwork(cmap_dim, self.mapping_layers, self.lr_mlp, self.c_dim,
                            name="mapping")(None, labels)
      out = layers.EqualDense(cmap_dim, name="out")(x).astype(jnp.float32)
      logits = projected_logits(out, cmap)
    else:
      logits = layers.EqualDense(1, name="out")(x)[:, 0].astype(jnp.float32)
    return (logits, features) if return_features else logits


def projected_logits(out: Array, cmap: Array) -> Array:
  """Conditional D's projection (Miyato & Koyama 2018, as stylegan2-ada scales it):
  ``logit = sum_k out[k] cmap[k] / sqrt(cmap_dim)``, (N, cmap_dim) x2 -> (N,)."""
  return jnp.sum(out * cmap, axis=-1) * (1 / math.sqrt(cmap.shape[-1]))
