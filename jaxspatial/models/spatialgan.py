"""SpatialGAN generator (Wang et al., TPAMI 2024; EqGAN-SA, CVPR 2022): StyleGAN2 synthesis
with Gaussian heatmaps encoded into its layers.

Encodings (``model.encoding``):

* ``norm`` (default) -- SEL_norm (paper eq. 2, official ``SEL``) before every modulated conv
  and ToRGB of the encoded blocks::

      dx  = IN(x) * (1 + phi_sigma(h)) + phi_mu(h)       # phi_*: 3x3 conv -> 1 channel
      out = x + 0.1 * conv3x3(lrelu(dx))

  where ``h = lrelu(conv3x3(E(H)))`` (64 channels) and ``E`` is the heatmap embedding of the
  level (two 3x3 convs, ``K_l -> 16 -> 32``, shared by the layers of that level).
* ``concat`` -- SEL_concat: ``x + 0.1 * conv3x3([x, h])`` (the paper's "concatenation of
  heatmap and feature processed by a convolution", with SEL_norm's residual form).
* ``indoor`` -- SEL_indoor (eq. 3): each modulated conv / ToRGB is modulated by the spatial
  style ``s(p) = S_bg + sum_i S_i H_i(p)``, one style code per centre (``S_i = A(w_i)``,
  the layer's affine applied to object ``i``'s latent) plus a background code; the
  demodulation uses the expected statistics ``rsqrt(sum w^2 mean_HW(s^2) + 1e-8)``. The
  latent is then ``(N, 1 + K, z_dim)`` (background first) and W+ ``(N, num_ws, 1 + K, w_dim)``.
* ``flatten`` -- Table V ablation: the level maps (at 4, 8, 16 px) are flattened and
  concatenated to ``z`` before the mapping network; no SEL.
* ``none`` -- plain StyleGAN2 (heatmaps ignored), the baselines of Tables III-V.

Where: the blocks in ``model.sel_resolutions`` (official code and default: every block; the
paper's text: 4, 8, 16 px for single objects). Block ``4 * 2^l`` px reads level ``l``;
blocks beyond the last level read the concatenated embeddings of all levels (the official
96-channel input); with multi-object heatmaps every block reads the one level.

Heatmap processing (``model.coarse``): False (EqGAN-SA, default; numerically the official
network, tests/test_eqgan_parity.py) embeds full-resolution maps and bilinearly downsamples
the embedding (align corners) to each SEL's input; True renders the Gaussians directly at
each layer's feature resolution and embeds them there -- what align-corners bilinear
downsampling of a full-size map sampled on the same grid gives, without the interpolation
error, and no embedding at image resolution (the form the documented demo runs used).

``model.heatmap_input = "noise"`` (Table IV "Gau. Noise" ablation) feeds N(0, 1) maps of
the same shapes (drawn from the ``noise`` rng) instead of the heatmaps. Heatmap sampling
itself is ``jaxspatial.models.heatmaps`` (``model.heatmaps`` = hierarchical | independent |
multi).

Parameters of the StyleGAN2 part keep ``stylegan2.Generator``'s names (``mapping``,
``synthesis/{const,conv1,to_rgb1,convs_i,to_rgbs_r}``); SELs are ``synthesis/sel_<layer>``
and embeddings ``synthesis/heatmap_embed_<level>``.

The module is one file of ~400 lines on purpose: it is the family's whole network (SEL, the
embedding, the spatially modulated layers it plugs into the shared synthesis loop, the builder,
the config and the StyleGAN2 warm start), whose parameter names EqGAN-SA's converter reads.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxspatial.errors import UserError
from jaxspatial.models import heatmaps as hm
from jaxspatial.models import layers
from jaxspatial.models import stylegan2 as sg2

Array = jax.Array
ENCODINGS = ("norm", "concat", "indoor", "flatten", "none")
HEATMAP_INPUTS = ("gaussian", "noise")
SPATIALGAN_DEFAULTS = dict(
    encoding="norm", heatmaps="hierarchical", heatmap_input="gaussian", coarse=False,
    num_objects=hm.MULTI_OBJECTS, object_std=hm.MULTI_STD,
    object_sigma_scale=hm.MULTI_SIGMA_SCALE, sel_hidden=64)
"""SpatialGAN's own ``config.model`` keys and their one default (the official EqGAN-SA network;
``sel_resolutions`` empty: every block, :func:`default_sel_resolutions`): what
:func:`spatialgan_model_config` writes unless told otherwise, and what a model section saved
before a key existed is read with -- except ``coarse``: :data:`LEGACY_COARSE`."""
LEGACY_COARSE = True
"""``model.coarse`` of a model section saved before the key existed: those models were trained
with coarse heatmaps (no embedding at image resolution), the form the official one replaced."""
EMBED_HIDDEN, EMBED_CHANNELS = 16, 32
SEL_RESIDUAL_GAIN = 0.1
IN_EPS = 1e-5


def instance_norm(x: Array, eps: float = IN_EPS) -> Array:
  """Per-sample, per-channel normalisation over H, W (torch ``InstanceNorm2d``, no affine)."""
  x32 = x.astype(jnp.float32)
  mean = jnp.mean(x32, axis=(1, 2), keepdims=True)
  var = jnp.var(x32, axis=(1, 2), keepdims=True)
  return ((x32 - mean) * jax.lax.rsqrt(var + eps)).astype(x.dtype)


def resize_aligned(x: Array, size: int) -> Array:
  """Bilinear resize of (N, H, W, C) to (N, size, size, C) with align_corners=True."""
  def matrix(n_in: int) -> np.ndarray:
    if n_in == size:
      return np.eye(size, dtype=np.float32)
    src = np.arange(size) * ((n_in - 1) / (size - 1)) if size > 1 else np.zeros(1)
    lo = np.clip(np.floor(src).astype(int), 0, n_in - 1)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = (src - lo).astype(np.float32)
    m = np.zeros((size, n_in), np.float32)
    m[np.arange(size), lo] += 1 - frac
    m[np.arange(size), hi] += frac
    return m
  my, mx = jnp.asarray(matrix(x.shape[1]), x.dtype), jnp.asarray(matrix(x.shape[2]), x.dtype)
  return jnp.einsum("yh,nhwc,xw->nyxc", my, x, mx, precision=jax.lax.Precision.HIGHEST)


# ---------------------------------------------------------------------------- layers


class HeatmapEmbedding(nn.Module):
  """Level maps (N, R, R, K_l) -> features (N, R, R, 32): two 3x3 conv + lrelu, the second
  scaled by sqrt(0.5) (official ``hm_conv0/1``)."""

  @nn.compact
  def __call__(self, h: Array) -> Array:
    h = layers.EqualConv(EMBED_HIDDEN, 3, name="conv0")(h)
    return layers.EqualConv(EMBED_CHANNELS, 3, name="conv1")(h) * math.sqrt(0.5)


class SEL(nn.Module):
  """Spatial encoding layer, ``norm`` (SPADE-like, eq. 2) or ``concat``; see module doc."""
  variant: str = "norm"
  hidden: int = 64

  @nn.compact
  def __call__(self, x: Array, h: Array) -> Array:
    c = x.shape[-1]
    f = layers.EqualConv(self.hidden, 3, name="shared")(h.astype(x.dtype))
    if self.variant == "norm":
      sigma = layers.EqualConv(1, 3, activate=False, name="sigma")(f)
      mu = layers.EqualConv(1, 3, activate=False, name="mu")(f)
      y = jax.nn.leaky_relu(instance_norm(x) * (1 + sigma) + mu, 0.2)
    else:
      y = jnp.concatenate([x, f], axis=-1)
    out = layers.EqualConv(c, 3, activate=False, name="output")(y)
    return x + jnp.asarray(SEL_RESIDUAL_GAIN, x.dtype) * out


def spatial_style_map(styles: Array, maps: Array) -> Array:
  """``S_bg + sum_i S_i H_i``: styles (N, 1 + K, C) (background first), maps (N, H, W, K)
  -> (N, H, W, C)."""
  obj = jnp.einsum("nhwk,nkc->nhwc", maps.astype(styles.dtype), styles[:, 1:])
  return obj + styles[:, :1, None, :]


class SpatialModulatedConv(nn.Module):
  """Modulated conv whose style varies over space (SEL_indoor): ``conv(x * s(p), w)`` times the
  expected-statistics demodulation ``rsqrt(sum_{u,v,i} w^2 mean_HW(s_i^2) + 1e-8)``; the
  style is ``(codes, maps)`` and ``s`` is :func:`spatial_style_map`. Params as
  ``layers.ModulatedConv`` (``modulation``, ``weight``); plugged into ``stylegan2.StyledConv``
  and ``stylegan2.ToRGB``."""
  features: int
  kernel_size: int
  demodulate: bool = True
  up: bool = False

  @nn.compact
  def __call__(self, x: Array, style: tuple[Array, Array]) -> Array:
    codes, maps = style            # (N, 1 + K, w_dim) style codes, (N, H, W, K) maps
    cin, k = x.shape[-1], self.kernel_size
    styles = layers.EqualDense(cin, bias_init=1.0, name="modulation")(codes)   # (N, 1+K, Cin)
    weight = self.param("weight", nn.initializers.normal(1.0), (k, k, cin, self.features))
    weight = weight / math.sqrt(cin * k * k)
    s = spatial_style_map(styles, maps)
    y = layers.modulated_conv(x * s.astype(x.dtype), weight, jnp.ones((x.shape[0], cin), x.dtype),
                           demodulate=False, up=self.up)
    if self.demodulate:
      s2 = jnp.mean(jnp.square(s.astype(jnp.float32)), axis=(1, 2))          # (N, Cin)
      w2 = jnp.sum(jnp.square(weight.astype(jnp.float32)), axis=(0, 1))      # (Cin, Cout)
      d = jax.lax.rsqrt(jnp.dot(s2, w2, precision=jax.lax.Precision.HIGHEST) + layers.DEMOD_EPS)
      y = y * d.astype(y.dtype)[:, None, None, :]
    return y


# ---------------------------------------------------------------------------- synthesis


class SpatialSynthesis(sg2.SynthesisNetwork):
  """W+ and heatmaps -> image: StyleGAN2's synthesis loop whose layers read the heatmaps
  (module doc): SEL_norm / SEL_concat before a layer, or SEL_indoor's spatial styles in it.
  ``conv_clamp`` clips the styled convs and ToRGBs as in StyleGAN2, never the SELs or heatmap
  embeddings (EqGAN-SA's are unclamped ``Conv2dLayer``s). Under ``mixed_precision_res`` a
  SEL computes in its block's dtype (it casts the embedding to its input's); the embeddings,
  shared by the blocks of a level and cached, compute in ``dtype``."""
  encoding: str = "norm"
  heatmap_input: str = "gaussian"
  coarse: bool = True
  sel_resolutions: tuple[int, ...] = (4, 8, 16)
  multi_object: bool = False
  sel_hidden: int = 64

  @nn.compact
  def __call__(self, ws: Array, heatmaps: hm.Heatmaps, noise_mode: str = "const",
               noise: Sequence[Array] | None = None, return_features: bool = False):
    indoor = self.encoding == "indoor"
    levels = range(heatmaps.num_levels)
    embeds = ({l: HeatmapEmbedding(name=f"heatmap_embed_{l}") for l in levels}
              if self.encoding in ("norm", "concat") else {})
    cache: dict = {}

    def level_of(block: int) -> int | None:
      """Heatmap level read by a block (None: all levels concatenated)."""
      if self.multi_object:
        return 0
      l = int(math.log2(block)) - 2
      return l if l < heatmaps.num_levels else None

    def raw_maps(level: int, res: int) -> Array:
      """Level maps (or the noise ablation's stand-in) at ``res``."""
      key = ("raw", level, res)
      if key not in cache:
        maps = (heatmaps.maps(res) if indoor else heatmaps.level_maps(level, res))
        if self.heatmap_input == "noise":
          rng = jax.random.fold_in(self.make_rng("noise"), 1000 * level + res)
          maps = jax.random.normal(rng, maps.shape, jnp.float32)
        cache[key] = maps.astype(self.dtype)
      return cache[key]

    def features(level: int, res: int) -> Array:
      key = ("feat", level, res)
      if key not in cache:
        if self.coarse:
          cache[key] = embeds[level](raw_maps(level, res))
        else:
          cache[key] = resize_aligned(embeds[level](raw_maps(level, self.resolution)), res)
      return cache[key]

    def encode(x: Array, block: int, layer: str) -> Array:
      """SEL_norm / SEL_concat before a layer of ``block`` (x at its input resolution)."""
      if self.encoding not in ("norm", "concat") or block not in self.sel_resolutions:
        return x
      res, level = x.shape[1], level_of(block)
      h = (features(level, res) if level is not None
           else jnp.concatenate([features(l, res) for l in levels], axis=-1))
      return SEL(self.encoding, self.sel_hidden, name=f"sel_{layer}")(x, h)

    def maps_for(block: int, res: int) -> Array:
      """SEL_indoor's object maps at ``res`` (zero outside the encoded blocks)."""
      maps = raw_maps(0, res)
      return maps if block in self.sel_resolutions else jnp.zeros_like(maps)

    conv_module = SpatialModulatedConv if indoor else layers.ModulatedConv

    def styled_conv(name: str, block: int, features_out: int, up: bool):
      conv = sg2.StyledConv(features_out, up=up, conv=conv_module, clamp=self.conv_clamp,
                            name=name)

      def layer(x, w, noise_i):
        x = encode(x, block, name)
        return conv(x, (w, maps_for(block, x.shape[1])) if indoor else w, noise_i)
      return layer

    def to_rgb(name: str, block: int):
      rgb = sg2.ToRGB(conv=conv_module, clamp=self.conv_clamp, name=name)

      def layer(x, w, skip):
        x = encode(x, block, name)
        return rgb(x, (w, maps_for(block, x.shape[1])) if indoor else w, skip)
      return layer

    return self.layers(ws, noise_mode, noise, return_features, styled_conv, to_rgb)


# ---------------------------------------------------------------------------- generator


class SpatialGenerator(sg2.Generator):
  """Mapping + heatmap-encoded synthesis; ``stylegan2.Generator``'s methods plus heatmaps.

  Methods (``module.apply(variables, ..., method=...)``):
    ``mapping(z, heatmaps=None) -> w`` (N, w_dim) or, indoor, (N, 1 + K, w_dim);
    ``styles(z, truncation, heatmaps=None) -> W+``;
    ``synthesize(ws, heatmaps, noise_mode, noise, return_features) -> img``;
    ``__call__(z, heatmaps, truncation, noise_mode, ...) -> img``.
  Plain methods (no variables needed): ``sample_heatmaps(key, n)``, ``latent_shape``.
  """
  encoding: str = "norm"
  heatmaps: str = "hierarchical"
  heatmap_input: str = "gaussian"
  coarse: bool = True
  sel_resolutions: tuple[int, ...] = (4, 8, 16)
  num_objects: int = hm.MULTI_OBJECTS
  object_std: float = hm.MULTI_STD
  object_sigma_scale: float = hm.MULTI_SIGMA_SCALE
  sel_hidden: int = 64

  @property
  def num_codes(self) -> int:
    """Style codes per sample: 1 + K with SEL_indoor (background first), else 1."""
    return 1 + self.num_objects if self.encoding == "indoor" else 1

  @property
  def latent_shape(self) -> tuple[int, ...]:
    return (self.num_codes, self.z_dim) if self.encoding == "indoor" else (self.z_dim,)

  def sample_heatmaps(self, key: Array, n: int) -> hm.Heatmaps:
    return hm.sample(key, n, self.heatmaps, num_objects=self.num_objects,
                     object_std=self.object_std, object_sigma_scale=self.object_sigma_scale)

  def setup(self):
    if self.encoding not in ENCODINGS:
      raise ValueError(f"model.encoding must be one of {ENCODINGS}, got {self.encoding!r}")
    if self.heatmap_input not in HEATMAP_INPUTS:
      raise ValueError(f"model.heatmap_input must be one of {HEATMAP_INPUTS}, "
                       f"got {self.heatmap_input!r}")
    if self.encoding == "indoor" and self.heatmaps != "multi":
      raise ValueError("encoding='indoor' needs heatmaps='multi' (one style code per object)")
    super().setup()

  def make_synthesis(self) -> SpatialSynthesis:
    return SpatialSynthesis(
        self.resolution, self.channels, self.dtype, self.conv_clamp, self.mixed_precision_res,
        encoding=self.encoding, heatmap_input=self.heatmap_input, coarse=self.coarse,
        sel_resolutions=tuple(self.sel_resolutions), multi_object=self.heatmaps == "multi",
        sel_hidden=self.sel_hidden, name="synthesis")

  def mapping(self, z: Array, heatmaps: hm.Heatmaps | None = None) -> Array:
    if self.encoding == "flatten":
      if heatmaps is None:
        raise ValueError("encoding='flatten' maps z together with the heatmaps; pass them")
      flat = jnp.concatenate(
          [heatmaps.level_maps(l, 4 * 2 ** l).reshape(z.shape[0], -1)
           for l in range(heatmaps.num_levels)], axis=-1)
      z = jnp.concatenate([layers.pixel_norm(z.astype(jnp.float32)), layers.pixel_norm(flat)], -1)
    if z.ndim == 3:
      n, k, d = z.shape
      return self.mapping_network(z.reshape(n * k, d)).reshape(n, k, self.w_dim)
    return self.mapping_network(z)

  def synthesize(self, ws: Array, heatmaps: hm.Heatmaps, noise_mode: str = "const",
                 noise: Sequence[Array] | None = None, return_features: bool = False):
    return self.synthesis(ws, heatmaps, noise_mode, noise, return_features)

  def __call__(self, z: Array, heatmaps: hm.Heatmaps, truncation: float | Array = 1.0,
               noise_mode: str = "const", noise: Sequence[Array] | None = None,
               return_features: bool = False):
    ws = self.styles(z, truncation, heatmaps=heatmaps)
    return self.synthesize(ws, heatmaps, noise_mode, noise, return_features)


# ---------------------------------------------------------------------------- config


def default_sel_resolutions(resolution: int, heatmaps: str, official: bool = True
                            ) -> tuple[int, ...]:
  """Blocks with SELs: every block (EqGAN-SA's ``use_sel``; also multi-object heatmaps), or
  with ``official=False`` the 4, 8, 16 px of the paper's single-object text."""
  every = tuple(2 ** i for i in range(2, sg2.log2_resolution(resolution) + 1))
  return every if official or heatmaps == "multi" else (4, 8, 16)


def build_generator(cfg: ml_collections.ConfigDict) -> SpatialGenerator:
  """``config.model`` (kind "spatialgan") -> :class:`SpatialGenerator`."""
  from jaxspatial.models import channel_table, compute_dtype, mixed_precision_res, setting

  def get(key):
    return setting(cfg, key, SPATIALGAN_DEFAULTS)

  heatmaps = get("heatmaps")
  # Configs written before the official form became the default leave this empty for the
  # form they were trained with (4, 8, 16; every block for multi-object heatmaps).
  sel_res = cfg.get("sel_resolutions", None) or default_sel_resolutions(
      cfg.resolution, heatmaps, official=False)
  return SpatialGenerator(
      resolution=cfg.resolution, z_dim=cfg.z_dim, w_dim=cfg.w_dim, n_mlp=cfg.n_mlp,
      lr_mlp=cfg.lr_mlp, channels=channel_table(cfg), dtype=compute_dtype(cfg),
      encoding=get("encoding"), heatmaps=heatmaps, heatmap_input=get("heatmap_input"),
      coarse=bool(cfg.get("coarse", LEGACY_COARSE)),
      sel_resolutions=tuple(int(r) for r in sel_res), num_objects=int(get("num_objects")),
      object_std=float(get("object_std")), object_sigma_scale=float(get("object_sigma_scale")),
      sel_hidden=int(get("sel_hidden")), conv_clamp=setting(cfg, "conv_clamp"),
      mixed_precision_res=mixed_precision_res(cfg))


_SGAN = SPATIALGAN_DEFAULTS


def spatialgan_model_config(resolution: int, *, encoding: str = _SGAN["encoding"],
                            heatmaps: str = _SGAN["heatmaps"],
                            heatmap_input: str = _SGAN["heatmap_input"],
                            coarse: bool = _SGAN["coarse"], sel_resolutions: Sequence[int] = (),
                            num_objects: int = _SGAN["num_objects"],
                            object_std: float = _SGAN["object_std"],
                            object_sigma_scale: float = _SGAN["object_sigma_scale"],
                            sel_hidden: int = _SGAN["sel_hidden"],
                            **stylegan2_kw) -> ml_collections.ConfigDict:
  """The ``config.model`` section of a SpatialGAN: StyleGAN2's keys (see
  ``stylegan2_model_config``) plus the heatmap/encoding switches of the module docstring.
  The defaults are the official EqGAN-SA network (``jaxspatial.convert.eqgan`` loads its
  pickles into exactly this): ``coarse=False`` and, for an empty ``sel_resolutions``, a SEL in
  every block (stored explicitly, see :func:`default_sel_resolutions`).

  Presets of the paper: EqGAN-SA/SpatialGAN single object = defaults; indoor (Table I last
  row) = ``heatmaps="multi", encoding="indoor"``; Table IV = ``heatmap_input="noise"`` or
  ``heatmaps="independent"``; Table V = ``encoding="flatten" | "concat"``.
  """
  from jaxspatial.models import stylegan2_model_config
  cfg = stylegan2_model_config(resolution, **stylegan2_kw)
  cfg.kind = "spatialgan"
  cfg.update(dict(encoding=encoding, heatmaps=heatmaps, heatmap_input=heatmap_input,
                  coarse=coarse,
                  sel_resolutions=tuple(sel_resolutions)
                  or default_sel_resolutions(resolution, heatmaps),
                  num_objects=num_objects, object_std=object_std,
                  object_sigma_scale=object_sigma_scale, sel_hidden=sel_hidden))
  return cfg


def transfer_from_stylegan2(stylegan2_vars: Any, spatialgan_vars: Any) -> Any:
  """StyleGAN2 generator variables copied into SpatialGAN ones of the same architecture.

  Every StyleGAN2 leaf (mapping, synthesis convs, ToRGBs, constant input, noise buffers,
  ``w_avg``) must exist in ``spatialgan_vars`` at the same path with the same shape; the
  leaves StyleGAN2 lacks (heatmap embeddings, SEL layers) keep ``spatialgan_vars``'s values,
  so the SEL layers start as freshly initialised. A warm start for experiments (the paper
  trains from scratch). UserError naming the first mismatches otherwise.
  """
  src = traverse_util.flatten_dict(jax.tree.map(np.asarray, stylegan2_vars), sep="/")
  dst = traverse_util.flatten_dict(jax.tree.map(np.asarray, spatialgan_vars), sep="/")
  bad = [f"{k} {np.shape(v)}" + (f" vs {np.shape(dst[k])}" if k in dst else " (missing)")
         for k, v in src.items() if k not in dst or np.shape(dst[k]) != np.shape(v)]
  if bad:
    raise UserError(f"the StyleGAN2 does not fit this SpatialGAN config: {'; '.join(bad[:3])}"
                    + (f" and {len(bad) - 3} more" if len(bad) > 3 else ""))
  dst.update(src)
  return traverse_util.unflatten_dict(dst, sep="/")
