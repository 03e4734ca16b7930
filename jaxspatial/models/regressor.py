"""Masked latent regressor E(x ⊙ m, m) -> W+ (Chai, Wulff & Isola, ICLR 2021).

A torchvision-style ResNet (18 or 34, BasicBlock, BatchNorm) as in the official
chail/latent-composition encoder:

* input: RGB hints ``x ⊙ m`` concatenated with the mask ``m`` in {0, 1} (4 channels; the
  RGB-only ablation, ``use_mask=False``, takes the 3-channel image as it is), resized to
  ``input_size`` by area averaging (exactly the official ``interpolate(mode='area')``, any
  input size; the official encoder uses ``input_size=256``);
* stem: 7×7/2 conv (no bias) + BN + ReLU + 3×3/2 max-pool; stages of BasicBlocks with
  ``width·(1, 2, 4, 8)`` channels, the last three starting with stride 2;
* head ("layer5"): a 1×1 conv ``8·width -> w_dim·num_ws`` with bias, then global average
  pooling, reshaped to W+ ``(n, num_ws, w_dim)``. A 1×1 conv commutes with spatial averaging,
  so the head pools first and applies the same (1, 1, C, w_dim·num_ws) kernel to the pooled
  vector: identical output and parameters, H·W times fewer FLOPs (the two orders differ by
  float32 rounding only, ≤ 2.2e-6 on the official encoder's W+).

What the head predicts is the generator family's (its regression target,
:mod:`jaxspatial.losses.regressor`), given to the module as a *layout*
(:data:`LAYOUT_DEFAULTS`: StyleGAN2's W+):

* ``grid`` (gh, gw) > (1, 1) -- a head that keeps space, for an SSN whose W+ is a grid of
  block styles per layer ``(n, num_ws, gh, gw, w_dim)``: the same 1×1 conv, after adaptive
  area pooling of the features to the block grid instead of global pooling (again pooled
  first: the conv commutes with it), so block ``(r, c)``'s styles are read from the features
  over that block's part of the image. At the demos' 32 px the last two stages of a strided
  ResNet would leave a 2×2 and a 1×1 map; a stage whose stride would take the map below the
  grid keeps stride 1 instead (without dilation: after the second stage the receptive field
  already exceeds the 32 px image). With a 1×1 grid every stage strides, as torchvision's.
* ``codes`` K > 0 -- K style codes per layer, ``(n, num_ws, K, w_dim)`` (an indoor
  SpatialGAN's background and object codes), from the same global head.
* ``extras`` -- further named outputs of the pooled features, each its own 1×1 conv head
  ``head_<name>`` (a SpatialGAN's heatmap centres and log-sigmas), its kernel initialised to
  zero so that it starts at the bias 0.01 (near the heatmap prior's mean centre 0 and σ = 1,
  where the Gaussians still cover the image and pass gradients; He-normal like ``conv5``
  started centres ~2 units away, off the image). The module then returns a dict
  ``{"ws": W+, name: (n, *shape), ...}``; without extras the W+ array itself.

The released latent-composition encoders are this module with ``depth=34, width=64,
input_size=256, use_mask=True`` (``jaxspatial.convert.latent_composition`` converts them).

Initialisation follows the official code: He-normal (fan_in, ReLU gain) for every conv and
0.01 for the head bias; BN scale 1, bias 0.

BatchNorm and sharding: batch statistics live in the ``batch_stats`` collection (apply with
``train=True, mutable=["batch_stats"]`` during training; ``train=False`` uses the running
averages). Under ``jax.jit`` with the batch sharded over a mesh, the mean/variance over axis 0
is a *global* reduction that XLA turns into a cross-device all-reduce, so this BN is a
synchronised BN over the global batch with no extra code (torch's BN at batch 16 on one GPU
is the same statistic at the paper's batch size). Running averages use torch's momentum 0.1
(Flax ``momentum=0.9``) and eps 1e-5.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

import jaxspatial.models as models_lib
from jaxspatial.models import stylegan2 as sg2

Array = jax.Array

STAGES: dict[int, tuple[int, int, int, int]] = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}
"""BasicBlocks per stage for each supported depth."""

DEFAULT_INPUT_SIZE = 256
BN_MOMENTUM = 0.9      # = torch momentum 0.1
BN_EPS = 1e-5
HEAD_BIAS_INIT = 0.01

he_normal = nn.initializers.variance_scaling(2.0, "fan_in", "normal")


def area_weights(n: int, size: int) -> np.ndarray:
  """(size, n) averaging matrix of torch ``interpolate(mode='area')`` along one axis: output
  ``i`` is the mean of inputs ``floor(i·n/size) … ceil((i+1)·n/size) − 1`` (adaptive average
  pooling; for non-integer ratios neighbouring windows overlap and differ in length)."""
  a = np.zeros((size, n), np.float32)
  for i in range(size):
    start, end = (i * n) // size, -((-(i + 1) * n) // size)
    a[i, start:end] = 1.0 / (end - start)
  return a


def area_pool(x: Array, grid: tuple[int, int]) -> Array:
  """(n, H, W, C) -> (n, gh, gw, C): adaptive average pooling (the windows of
  :func:`area_weights`, any ratio) in float32, the spatial head's pooling."""
  hi = jax.lax.Precision.HIGHEST
  x = jnp.einsum("ih,nhwc->niwc", area_weights(x.shape[1], grid[0]), x, precision=hi)
  return jnp.einsum("jw,niwc->nijc", area_weights(x.shape[2], grid[1]), x, precision=hi)


def area_resize(x: Array, size: int) -> Array:
  """(n, H, W, C) -> (n, size, size, C), torch's ``interpolate(mode='area')`` exactly, for
  every ratio (down, up, fractional): the official encoder's resize to 256.

  Integer down-scaling is a box mean; any other ratio is the separable window average of
  :func:`area_weights` (two small matmuls).
  """
  n, h, w, c = x.shape
  if (h, w) == (size, size):
    return x
  if h % size == 0 and w % size == 0:
    return x.reshape(n, size, h // size, size, w // size, c).mean(axis=(2, 4))
  hi = jax.lax.Precision.HIGHEST
  x = jnp.einsum("ih,nhwc->niwc", area_weights(h, size).astype(x.dtype), x, precision=hi)
  return jnp.einsum("jw,niwc->nijc", area_weights(w, size).astype(x.dtype), x, precision=hi)


class BasicBlock(nn.Module):
  """torchvision BasicBlock: ``relu(bn(conv3(relu(bn(conv3_s(x))))) + shortcut(x))``; the
  shortcut is a strided 1×1 conv + BN when the stride or width changes."""
  features: int
  stride: int = 1
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: Array, train: bool) -> Array:
    conv = functools.partial(nn.Conv, use_bias=False, kernel_init=he_normal, dtype=self.dtype)
    norm = functools.partial(nn.BatchNorm, use_running_average=not train, momentum=BN_MOMENTUM,
                             epsilon=BN_EPS, dtype=self.dtype)
    s = (self.stride, self.stride)
    y = conv(self.features, (3, 3), s, padding=((1, 1), (1, 1)), name="conv1")(x)
    y = nn.relu(norm(name="bn1")(y))
    y = conv(self.features, (3, 3), padding=((1, 1), (1, 1)), name="conv2")(y)
    y = norm(name="bn2")(y)
    if self.stride != 1 or x.shape[-1] != self.features:
      x = conv(self.features, (1, 1), s, padding="VALID", name="downsample_conv")(x)
      x = norm(name="downsample_bn")(x)
    return nn.relu(y + x)


class Regressor(nn.Module):
  """``(x, mask) -> W+``: x (n, H, W, 3) in [-1, 1], mask (n, H, W, 1) in {0, 1} (1 = known)
  -> ws (n, num_ws, w_dim) float32 (other layouts: the module docstring).

  ``mask=None`` means every pixel is known. With ``use_mask=False`` the mask is ignored and
  the image is encoded as given (the paper's "RGB" regressor).
  """
  num_ws: int
  w_dim: int
  depth: int = 34
  width: int = 64
  input_size: int = DEFAULT_INPUT_SIZE
  use_mask: bool = True
  dtype: Any = jnp.float32
  grid: tuple[int, int] = (1, 1)
  codes: int = 0
  extras: tuple[tuple[str, tuple[int, ...]], ...] = ()

  @nn.compact
  def __call__(self, x: Array, mask: Array | None = None, train: bool = False) -> Array:
    if self.depth not in STAGES:
      raise ValueError(f"regressor depth must be one of {sorted(STAGES)}, got {self.depth}")
    x = x.astype(jnp.float32)
    if self.use_mask:
      m = jnp.ones(x.shape[:-1] + (1,), jnp.float32) if mask is None else mask.astype(jnp.float32)
      x = jnp.concatenate([x * m, m], axis=-1)
    x = area_resize(x, self.input_size).astype(self.dtype)

    x = nn.Conv(self.width, (7, 7), (2, 2), padding=((3, 3), (3, 3)), use_bias=False,
                kernel_init=he_normal, dtype=self.dtype, name="conv1")(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPS,
                     dtype=self.dtype, name="bn1")(x)
    x = nn.max_pool(nn.relu(x), (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    for stage, blocks in enumerate(STAGES[self.depth]):
      for b in range(blocks):
        halved = -(-min(x.shape[1:3]) // 2)
        stride = 2 if stage > 0 and b == 0 and halved >= max(self.grid) else 1
        x = BasicBlock(self.width * 2 ** stage, stride, self.dtype,
                       name=f"layer{stage + 1}_{b}")(x, train)

    head = functools.partial(nn.Conv, kernel_size=(1, 1), kernel_init=he_normal,
                             bias_init=nn.initializers.constant(HEAD_BIAS_INIT))
    pooled = jnp.mean(x.astype(jnp.float32), axis=(1, 2), keepdims=True)
    n = x.shape[0]
    if tuple(self.grid) == (1, 1):
      out = head(self.num_ws * max(self.codes, 1) * self.w_dim, name="conv5")(pooled)
      ws = out[:, 0, 0].reshape(n, self.num_ws, *((self.codes,) if self.codes else ()),
                                self.w_dim)
    else:
      (gh, gw), blocks = self.grid, area_pool(x.astype(jnp.float32), self.grid)
      out = head(self.num_ws * self.w_dim, name="conv5")(blocks)
      ws = out.reshape(n, gh, gw, self.num_ws, self.w_dim).transpose(0, 3, 1, 2, 4)
    if not self.extras:
      return ws
    extra = functools.partial(head, kernel_init=nn.initializers.zeros)
    return {"ws": ws, **{name: extra(math.prod(shape), name=f"head_{name}")(pooled)[:, 0, 0]
                         .reshape(n, *shape) for name, shape in self.extras}}


REGRESSOR_DEFAULTS = dict(depth=34, width=64, use_mask=True, noise_mode="const",
                          compute_dtype="float32")
"""The regressor's ``config.model`` keys and their one default (the official StyleGAN2
encoder: ResNet-34, RGB+mask input, the generator's constant noise): what
:func:`regressor_model_config` writes unless told otherwise, and what a model section saved
before a key existed is read with."""
_R = REGRESSOR_DEFAULTS


LAYOUT_DEFAULTS = dict(grid_h=1, grid_w=1, codes=0, extras={})
"""What the head predicts besides ``num_ws`` and ``w_dim`` (the module docstring), as
``config.model`` keys: StyleGAN2's W+ (a 1×1 grid, one code per layer, no extras). The family's
regression target gives them (``jaxspatial.losses.regressor``); a model section saved before
the keys existed is a StyleGAN2 regressor and is read with these."""


def regressor_model_config(generator: ml_collections.ConfigDict, *, depth: int = _R["depth"],
                           width: int = _R["width"], input_size: int | None = None,
                           use_mask: bool = _R["use_mask"], noise_mode: str = _R["noise_mode"],
                           compute_dtype: str = _R["compute_dtype"],
                           layout: dict[str, Any] | None = None) -> ml_collections.ConfigDict:
  """The ``config.model`` section of a regressor for the generator ``generator`` (that
  generator's own ``model`` section, kept whole under ``model.generator`` so the checkpoint
  rebuilds both networks).

  Args:
    generator: the generator's ``model`` config.
    depth: ResNet depth (18 or 34; the paper uses 34 for StyleGAN2).
    width: channels of the first stage (64 in torchvision; small for tests).
    input_size: side the input is resized to (default: min(256, generator resolution)).
    use_mask: RGB+mask input (the paper's RGBM); False = RGB-only ablation.
    noise_mode: the generator's noise when E's output is decoded (const|random|none).
    layout: what the head predicts: ``num_ws``, ``w_dim`` and any of :data:`LAYOUT_DEFAULTS`'
      keys, from the family's regression target
      (``jaxspatial.losses.regressor.regression_target(generator).layout``). None: StyleGAN2's
      W+, which only a ``stylegan2`` generator takes.
  """
  if layout is None:
    if generator.get("kind") != "stylegan2":
      raise ValueError(f"without a layout the regressor predicts a stylegan2 generator's W+; "
                       f"a {generator.get('kind')!r} generator's layout comes from its "
                       "family's regression target (jaxspatial.losses.regressor)")
    layout = dict(num_ws=sg2.num_ws(int(generator.resolution)), w_dim=int(generator.w_dim))
  if depth not in STAGES:
    raise ValueError(f"regressor depth must be one of {sorted(STAGES)}, got {depth}")
  resolution = int(generator.resolution)
  input_size = int(input_size or min(DEFAULT_INPUT_SIZE, resolution))
  layout = {**LAYOUT_DEFAULTS, **layout}
  if input_size < 4 * max(layout["grid_h"], layout["grid_w"]):
    raise ValueError(f"a {layout['grid_h']}x{layout['grid_w']} output grid needs an input of "
                     f"at least {4 * max(layout['grid_h'], layout['grid_w'])} px (the stem "
                     f"divides it by 4), got {input_size}")
  return ml_collections.ConfigDict(dict(
      kind="regressor", resolution=resolution, num_ws=int(layout["num_ws"]),
      w_dim=int(layout["w_dim"]), depth=depth, width=width, input_size=input_size,
      use_mask=use_mask, noise_mode=noise_mode, compute_dtype=compute_dtype,
      grid_h=int(layout["grid_h"]), grid_w=int(layout["grid_w"]), codes=int(layout["codes"]),
      extras={k: [int(d) for d in v] for k, v in layout["extras"].items()},
      generator=ml_collections.ConfigDict(generator.to_dict())))


def build_regressor(cfg: ml_collections.ConfigDict) -> Regressor:
  """``config.model`` of kind "regressor" -> :class:`Regressor`."""
  get = lambda key: cfg.get(key, LAYOUT_DEFAULTS[key])  # noqa: E731
  extras = tuple((str(k), tuple(int(d) for d in v)) for k, v in sorted(dict(get("extras")).items()))
  return Regressor(num_ws=int(cfg.num_ws), w_dim=int(cfg.w_dim), depth=int(cfg.depth),
                   width=int(cfg.width), input_size=int(cfg.input_size),
                   use_mask=bool(cfg.use_mask), dtype=models_lib.compute_dtype(cfg),
                   grid=(int(get("grid_h")), int(get("grid_w"))), codes=int(get("codes")),
                   extras=extras)


def init_regressor(cfg: ml_collections.ConfigDict, key: jax.Array) -> dict:
  """Fresh variables ``{"params", "batch_stats"}`` for ``build_regressor(cfg)``."""
  res = int(cfg.resolution)
  x = jnp.zeros((1, res, res, 3), jnp.float32)
  init = jax.jit(build_regressor(cfg).init)
  return dict(init(key, x, jnp.ones((1, res, res, 1), jnp.float32)))
