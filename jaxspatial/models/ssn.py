"""Spatially Stochastic Networks (Hong, Arjovsky, Barnhart, Thompson, NeurIPS 2020).

A StyleGAN2 whose latent is a grid of independent blocks ``z`` (N, nh, nw, z_dim):

* **mapping** (paper §3.2): StyleGAN2's MLP applied to every block — the same pixel norm and
  ``n_mlp`` EqualDense layers over the last axis, i.e. 1×1 convs (lr_mul 0.01);
* **spatial encoder** (new, paper §3.4): (a) ``encoder_blocks`` residual 3×3-conv blocks over
  the block grid, ``g + gain·conv(lrelu(conv(g)))`` with ``gain`` initialised to 0, so each
  block's style can take its neighbours into account once trained; (b) in every layer,
  StyleGAN2's style affine applied per block and the result resized to the layer's input
  resolution (``style_upsample``: "nearest" as SPADE, or "bilinear");
* **spatially modulated convolutions** ``w*(s⊙h)/σ_E(w,s)`` in place of the modulated
  convs, ToRGB with spatial modulation (no demodulation), noise, skips: StyleGAN2's layout
  (:mod:`jaxspatial.models.spatial_modulation`).

``spatial_conditioning`` swaps the styled convs' conditioning for the two layers the paper's
appendix A derives it from, to test its Fig. 4 claim that they make droplet artifacts:
"spade" (eq. 3: actual statistics over batch and space) and "adain" (eq. 6 with spatial
styles: actual per-sample statistics), see :class:`SpatialNormConv`. Everything else (mapping,
encoder, style resize, noise, bias, ToRGB, skips) is the same network.

The spatial W+ analogue is ``ws`` (N, num_ws, nh, nw, w_dim): one style grid per layer.
Parameter names are StyleGAN2's (``mapping/dense_i``, ``synthesis/conv1/conv/...``) plus
``encoder/*``, so :func:`transfer_from_stylegan2` is a copy plus a fresh encoder. With the
encoder at its init (gain 0) and a spatially constant ``z``, every style map is constant and
σ_E equals StyleGAN2's demodulation: the SSN reproduces the StyleGAN2 it came from.
"""

from __future__ import annotations

import copy
import functools
import math
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxspatial import models as models_lib
from jaxspatial.models import layers
from jaxspatial.models import spatial_modulation as sm
from jaxspatial.models import stylegan2

Array = jax.Array


# ------------------------------------------------------------------------- layers


class ContextBlock(nn.Module):
  """``g + gain * conv3x3(lrelu(conv3x3(g)))`` on the block grid; ``gain`` init 0 (identity)."""

  @nn.compact
  def __call__(self, g: Array) -> Array:
    c = g.shape[-1]
    h = layers.EqualConv(c, 3, name="conv1")(g)
    h = layers.EqualConv(c, 3, activate=False, name="conv2")(h)
    gain = self.param("gain", nn.initializers.zeros, ())
    return g + gain * h


class BlockEncoder(nn.Module):
  """The learned part of the spatial encoder: ``num_blocks`` :class:`ContextBlock` s.

  (N, nh, nw, w_dim) -> same shape; the identity at initialisation.
  """
  num_blocks: int = 1

  @nn.compact
  def __call__(self, g: Array) -> Array:
    for i in range(self.num_blocks):
      g = ContextBlock(name=f"block_{i}")(g)
    return g


CONDITIONINGS = ("modconv", "spade", "adain")
"""``model.spatial_conditioning``: the spatially modulated conv (the paper's layer), or a
plain conv followed by SPADE (eq. 3) or by AdaIN with spatial styles (eq. 6)."""
SSN_DEFAULTS = dict(grid_h=4, grid_w=4, encoder_blocks=1, style_upsample="nearest",
                    spatial_conditioning="modconv")
"""SSN's own ``config.model`` keys and their one default (the paper's 4×4 grid and spatially
modulated conv): what :func:`ssn_model_config` writes unless told otherwise, and what a model
section saved before a key existed is read with."""

NORM_EPS = 1e-8
"""Added to the variance before the square root in :func:`spade` and :func:`adain`: StyleGAN's
instance-norm epsilon, and the same 1e-8 the modulated convs add to their σ²."""


def _normalise(h: Array, scale: Array, bias: Array, axes: tuple[int, ...]) -> Array:
  """``scale ⊙ (h − μ) / σ + bias``, ``μ, σ`` over ``axes`` of ``h`` (biased variance, plus
  :data:`NORM_EPS`), in float32 and returned in ``h``'s dtype."""
  x = h.astype(jnp.float32)
  mu = jnp.mean(x, axis=axes, keepdims=True)
  var = jnp.mean(jnp.square(x - mu), axis=axes, keepdims=True)
  return (scale * (x - mu) * jax.lax.rsqrt(var + NORM_EPS) + bias).astype(h.dtype)


def spade(h: Array, scale: Array, bias: Array) -> Array:
  """SPADE (SSN appendix A, eq. 3-5): ``s_s ⊙ (h − μ_D(h)) / σ_D(h) + s_b``.

  ``μ_D, σ_D`` are per channel over the batch *and* space (eq. 4, 5: biased variance, plus
  :data:`NORM_EPS`), so a sample's normalisation depends on the rest of its batch.

  Args:
    h: (N, H, W, C) activations.
    scale, bias: (N or 1, H, W, C) spatial styles ``s_s``, ``s_b``.
  Returns:
    (N, H, W, C) in ``h``'s dtype; statistics in float32.
  """
  return _normalise(h, scale, bias, axes=(0, 1, 2))


def adain(h: Array, scale: Array, bias: Array) -> Array:
  """AdaIN with spatial styles (SSN appendix A, eq. 6-8): ``s_s ⊙ (h − μ(h)) / σ(h) + s_b``.

  ``μ, σ`` are per sample and channel over space (instance normalisation, eq. 7, 8: biased
  variance, plus :data:`NORM_EPS`); the styles vary over space like SPADE's instead of being
  StyleGAN's one number per channel.

  Args:
    h: (N, H, W, C) activations.
    scale, bias: (N or 1, H, W, C) spatial styles ``s_s``, ``s_b``.
  Returns:
    (N, H, W, C) in ``h``'s dtype; statistics in float32.
  """
  return _normalise(h, scale, bias, axes=(1, 2))


_NORMS = {"spade": spade, "adain": adain}


class SpatialNormConv(nn.Module):
  """A styled conv conditioned the SPADE/AdaIN way: ``norm(w * h, s_s, s_b)``.

  The convolution (and its 2× up-sampling path) is StyleGAN2's with unit styles and no
  demodulation; the normalisation by *actual* statistics (:func:`spade` or :func:`adain`)
  then takes the place of σ_E's expected ones, and the spatial styles enter as its scale
  and bias. This is appendix A's derivation read backwards: the modulated conv merges
  "modulate, convolve, normalise" and swaps actual statistics for expected ones, the droplet
  cure; here they are actual again. The styles are two affines of the block grid
  (``modulation``: ``s_s``, bias init 1 like StyleGAN2's; ``modulation_bias``: ``s_b``, bias
  init 0), resized to the *output* resolution as :func:`~.spatial_modulation.resize_styles`
  does for the modulated conv. Noise, bias and activation follow in :class:`StyledConv`.
  """
  features: int
  kernel_size: int
  norm: str
  up: bool = False
  upsample: str = "nearest"

  @nn.compact
  def __call__(self, x: Array, w_grid: Array) -> Array:
    """x: (N, H, W, Cin); w_grid: (N, nh, nw, w_dim) -> (N, H', W', features)."""
    cin, k = x.shape[-1], self.kernel_size
    weight = self.param("weight", nn.initializers.normal(1.0), (k, k, cin, self.features))
    weight = weight / math.sqrt(cin * k * k)
    unit = jnp.ones((x.shape[0], cin), x.dtype)
    y = layers.modulated_conv(x, weight, unit, demodulate=False, up=self.up)
    w_grid = w_grid.astype(jnp.float32)
    scale = layers.EqualDense(self.features, bias_init=1.0, name="modulation")(w_grid)
    bias = layers.EqualDense(self.features, bias_init=0.0, name="modulation_bias")(w_grid)
    size = y.shape[1:3]
    return _NORMS[self.norm](y, sm.resize_styles(scale, size, self.upsample),
                             sm.resize_styles(bias, size, self.upsample))


def _spatial_norm_conv(norm: str, upsample: str):
  """The ``conv`` factory :class:`stylegan2.StyledConv` calls, for :class:`SpatialNormConv`
  (the normalisation stands in for demodulation, so the StyledConvs' ``demodulate=True`` is
  the only value it takes)."""
  def make(features: int, kernel_size: int, *, demodulate: bool, up: bool, name: str):
    if not demodulate:
      raise ValueError("SpatialNormConv always normalises: it replaces demodulated convs only")
    return SpatialNormConv(features, kernel_size, norm, up=up, upsample=upsample, name=name)
  return make


class SSNSynthesis(stylegan2.SynthesisNetwork):
  """Spatial W+ (N, num_ws, nh, nw, w_dim) -> image (N, res, res, 3): StyleGAN2's synthesis
  loop (layer order, noise, ``return_features``) with the spatially modulated conv in every
  StyledConv and ToRGB; layer ``i`` is modulated by the style grid ``ws[:, i]``, resized to
  the layer's input with ``upsample``. ``conditioning`` "spade" or "adain" puts a
  :class:`SpatialNormConv` in every StyledConv instead (ToRGB keeps its spatial modulation,
  which has no normalisation to change).
  """
  upsample: str = "nearest"
  conditioning: str = "modconv"

  def modulated_conv(self):
    return functools.partial(sm.SpatiallyModulatedConv, upsample=self.upsample)

  def styled_conv(self, name: str, block: int, features: int, up: bool):
    if self.conditioning == "modconv":
      return super().styled_conv(name, block, features, up)
    return stylegan2.StyledConv(features, up=up, conv=_spatial_norm_conv(
        self.conditioning, self.upsample), clamp=self.conv_clamp, name=name)


class SSNGenerator(stylegan2.Generator):
  """Per-block mapping + block encoder + spatial synthesis; StyleGAN2's Generator API.

  ``mapping(z)`` (N, nh, nw, z_dim) -> (N, nh, nw, w_dim) (MLP per block, then the block
  encoder); ``truncate`` toward ``w_avg`` per block; ``styles`` -> spatial W+ (N, num_ws,
  nh, nw, w_dim); ``synthesize(ws, noise_mode, noise, return_features)``.
  """
  grid: tuple[int, int] = (4, 4)
  encoder_blocks: int = 1
  upsample: str = "nearest"
  conditioning: str = "modconv"

  def setup(self):
    super().setup()
    self.encoder = BlockEncoder(self.encoder_blocks, name="encoder")

  def make_synthesis(self) -> SSNSynthesis:
    return SSNSynthesis(self.resolution, self.channels, self.dtype, self.conv_clamp,
                        self.mixed_precision_res, upsample=self.upsample,
                        conditioning=self.conditioning, name="synthesis")

  def mapping(self, z: Array) -> Array:
    return self.encoder(self.mapping_network(z))


# ------------------------------------------------------------------------- config


def _check_grid(resolution: int, grid: Sequence[int]) -> tuple[int, int]:
  gh, gw = (int(g) for g in grid)
  for g in (gh, gw):
    if g < 1 or g & (g - 1) or g > resolution:
      raise ValueError(f"latent grid {gh}x{gw}: each side must be a power of two <= the "
                       f"resolution {resolution}")
  return gh, gw


_SSN = SSN_DEFAULTS


def ssn_model_config(resolution: int, *,
                     grid: Sequence[int] = (_SSN["grid_h"], _SSN["grid_w"]),
                     encoder_blocks: int = _SSN["encoder_blocks"],
                     style_upsample: str = _SSN["style_upsample"],
                     spatial_conditioning: str = _SSN["spatial_conditioning"],
                     **stylegan2_kw) -> ml_collections.ConfigDict:
  """The ``config.model`` section of an SSN: StyleGAN2's keys (``stylegan2_kw``, see
  :func:`jaxspatial.models.stylegan2_model_config`) plus ``grid_h``, ``grid_w`` (latent
  blocks; paper 4×4), ``encoder_blocks``, ``style_upsample`` and ``spatial_conditioning``
  (:data:`CONDITIONINGS`). ``z_dim`` is the size of one block (paper 512)."""
  gh, gw = _check_grid(resolution, grid)
  cfg = models_lib.stylegan2_model_config(resolution, **stylegan2_kw)
  cfg.kind = "ssn"
  cfg.grid_h, cfg.grid_w = gh, gw
  cfg.encoder_blocks = encoder_blocks
  cfg.style_upsample = style_upsample
  cfg.spatial_conditioning = spatial_conditioning
  return cfg


def grid_of(cfg: ml_collections.ConfigDict) -> tuple[int, int]:
  """``(grid_h, grid_w)`` of an SSN ``config.model`` (validated against the resolution)."""
  return _check_grid(int(cfg.resolution), (models_lib.setting(cfg, "grid_h", SSN_DEFAULTS),
                                           models_lib.setting(cfg, "grid_w", SSN_DEFAULTS)))


def build_generator(cfg: ml_collections.ConfigDict) -> SSNGenerator:
  """``config.model`` (kind "ssn") -> :class:`SSNGenerator`."""
  upsample = models_lib.setting(cfg, "style_upsample", SSN_DEFAULTS)
  if upsample not in sm.UPSAMPLE_MODES:
    raise ValueError(f"model.style_upsample must be one of {sm.UPSAMPLE_MODES}, "
                     f"got {upsample!r}")
  conditioning = models_lib.setting(cfg, "spatial_conditioning", SSN_DEFAULTS)
  if conditioning not in CONDITIONINGS:
    raise ValueError(f"model.spatial_conditioning must be one of {CONDITIONINGS}, "
                     f"got {conditioning!r}")
  return SSNGenerator(
      resolution=cfg.resolution, z_dim=cfg.z_dim, w_dim=cfg.w_dim, n_mlp=cfg.n_mlp,
      lr_mlp=cfg.lr_mlp, channels=models_lib.channel_table(cfg),
      dtype=models_lib.compute_dtype(cfg), grid=grid_of(cfg),
      encoder_blocks=int(models_lib.setting(cfg, "encoder_blocks", SSN_DEFAULTS)),
      upsample=upsample,
      conditioning=conditioning, conv_clamp=models_lib.setting(cfg, "conv_clamp"),
      mixed_precision_res=models_lib.mixed_precision_res(cfg))


# ------------------------------------------------------------------------- transfer


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
  out = {}
  for k, v in tree.items():
    path = f"{prefix}/{k}" if prefix else str(k)
    if isinstance(v, Mapping):
      out.update(_flat(v, path))
    else:
      out[path] = v
  return out


def _unflat(flat: dict[str, Any]) -> dict:
  tree: dict = {}
  for path, v in flat.items():
    *parents, leaf = path.split("/")
    node = tree
    for p in parents:
      node = node.setdefault(p, {})
    node[leaf] = v
  return tree


def transfer_generator(sg2_vars: dict, ssn_cfg: ml_collections.ConfigDict,
                       key: Array | None = None) -> dict:
  """StyleGAN2 generator variables -> SSN variables (paper §3.4).

  Mapping MLP -> per-block 1×1 convs, style convs -> spatially modulated convs, ToRGB ->
  ToRGB, const/noise/bias/w_avg as they are (all by name); the block encoder is initialised
  from ``key`` (gain 0: the identity). Every SSN variable outside ``encoder/`` must come
  from the StyleGAN2 with the same shape and every StyleGAN2 variable must be used, else
  ValueError naming the offenders.
  """
  conditioning = models_lib.setting(ssn_cfg, "spatial_conditioning", SSN_DEFAULTS)
  if conditioning != "modconv":
    raise ValueError(f"a StyleGAN2 transfers into the modconv SSN only; {conditioning!r} "
                     "layers have other parameters (train them from scratch)")
  key = jax.random.key(0) if key is None else key
  g = build_generator(ssn_cfg)
  gh, gw = grid_of(ssn_cfg)
  expected = _flat(jax.eval_shape(g.init, key, jnp.zeros((1, gh, gw, ssn_cfg.z_dim))))
  encoder = BlockEncoder(int(models_lib.setting(ssn_cfg, "encoder_blocks", SSN_DEFAULTS))).init(
      key, jnp.zeros((1, gh, gw, ssn_cfg.w_dim)))["params"]
  flat = {k: np.asarray(v) for k, v in _flat(sg2_vars).items()}
  flat.update({f"params/encoder/{k}": np.asarray(v) for k, v in _flat(encoder).items()})
  missing = sorted(set(expected) - set(flat))
  unused = sorted(set(flat) - set(expected))
  mismatched = sorted(k for k in set(expected) & set(flat)
                      if tuple(expected[k].shape) != tuple(flat[k].shape))
  if missing or unused or mismatched:
    raise ValueError("StyleGAN2 -> SSN transfer: "
                     + "; ".join(f"{name}: {', '.join(keys[:6])}" for name, keys in
                                 (("missing", missing), ("unused", unused),
                                  ("shape mismatch", mismatched)) if keys))
  return _unflat(flat)


def transfer_from_stylegan2(models: dict, config: ml_collections.ConfigDict,
                            summary: list[str],
                            grid: Sequence[int] = (_SSN["grid_h"], _SSN["grid_w"]),
                            encoder_blocks: int = _SSN["encoder_blocks"],
                            style_upsample: str = _SSN["style_upsample"],
                            seed: int = 0) -> tuple[dict, ml_collections.ConfigDict, list[str]]:
  """A converted StyleGAN2 (``convert_torch.convert_stylegan2`` output) -> an SSN.

  ``g_ema`` and ``g`` are transferred with the same fresh encoder (``seed``), ``d`` is kept
  (SSN trains with StyleGAN2's discriminator). The config's ``model`` becomes an SSN section
  with the StyleGAN2's knobs; ``z_dim`` stays the per-block size.
  """
  m = config.model
  ssn_cfg = ssn_model_config(
      int(m.resolution), grid=grid, z_dim=int(m.z_dim), w_dim=int(m.w_dim), n_mlp=int(m.n_mlp),
      channel_multiplier=int(models_lib.setting(m, "channel_multiplier")),
      channel_base=int(models_lib.setting(m, "channel_base")),
      channel_max=int(models_lib.setting(m, "channel_max")),
      mbstd_group_size=int(models_lib.setting(m, "mbstd_group_size")),
      encoder_blocks=encoder_blocks, style_upsample=style_upsample)
  ssn_cfg.lr_mlp = float(models_lib.setting(m, "lr_mlp"))
  for key in ("compute_dtype", "conv_clamp", "mixed_precision_res"):
    ssn_cfg[key] = models_lib.setting(m, key)
  key = jax.random.key(seed)
  out = dict(models)
  for name in ("g_ema", "g"):
    if name in models:
      out[name] = transfer_generator(models[name], ssn_cfg, key)
  new_config = copy.deepcopy(config)
  new_config.model = ssn_cfg
  gh, gw = grid_of(ssn_cfg)
  summary = list(summary) + [
      f"transferred to SSN: latent grid {gh}x{gw}x{ssn_cfg.z_dim}, mapping -> per-block 1x1 "
      "convs, style convs -> spatially modulated convs, ToRGB -> ToRGB, new block encoder "
      f"({encoder_blocks} residual block(s), identity at init: a spatially constant z "
      "reproduces the StyleGAN2)"]
  return out, new_config, summary
