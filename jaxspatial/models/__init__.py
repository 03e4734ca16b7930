"""Flax modules of every family; StyleGAN2's builders (``stylegan2_generator`` /
``stylegan2_discriminator``) and the config helpers every family's builders share.

Every other family lives in ``jaxspatial/models/<kind>.py`` (``build_generator(cfg)``;
StyleGAN2's discriminator unless the family names its own). ``config.model`` -> modules by
kind is :func:`jaxspatial.families.build_generator` / ``build_discriminator``: this package
imports only itself (and ``jaxspatial.errors``), never the registry.
"""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections

from jaxspatial.errors import UserError
from jaxspatial.models import stylegan2

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

STYLEGAN2_DEFAULTS = dict(
    z_dim=512, w_dim=512, n_mlp=8, lr_mlp=0.01, channel_multiplier=2, channel_base=0,
    channel_max=512, mbstd_group_size=4, mbstd_num_channels=1, compute_dtype="float32", c_dim=0,
    conv_clamp=None, cmap_dim=0, d_mapping_layers=8, mixed_precision_res=0)
"""The StyleGAN2 keys of ``config.model`` and their one default: rosinality's config-f with
stylegan2-ada's switches off. :func:`stylegan2_model_config` writes them unless told
otherwise; the builders read a model section saved before a key existed with it
(:func:`setting`)."""


def setting(cfg: ml_collections.ConfigDict, key: str, defaults: dict = STYLEGAN2_DEFAULTS):
  """``cfg[key]``, or ``defaults[key]`` for a model section saved before ``key`` existed."""
  return cfg.get(key, defaults[key])


def channel_table(cfg: ml_collections.ConfigDict) -> stylegan2.ChannelTable:
  return stylegan2.ChannelTable(
      channel_multiplier=int(setting(cfg, "channel_multiplier")),
      channel_base=int(setting(cfg, "channel_base")),
      channel_max=int(setting(cfg, "channel_max")))


def compute_dtype(cfg: ml_collections.ConfigDict):
  name = setting(cfg, "compute_dtype")
  if name not in _DTYPES:
    raise ValueError(f"model.compute_dtype must be one of {sorted(_DTYPES)}, got {name!r}")
  return _DTYPES[name]


def mixed_precision_res(cfg: ml_collections.ConfigDict) -> int:
  """``model.mixed_precision_res`` N, checked: the top N resolutions of G and D compute in
  bfloat16 (stylegan2-ada's ``num_fp16_res``; :func:`stylegan2.block_dtype`), the rest in
  float32. N > 0 needs ``compute_dtype`` float32 and a ``conv_clamp`` (stylegan2-ada's
  configs set ``num_fp16_res=4`` and ``conv_clamp=256`` together, and its ``--fp32`` clears
  both); a one-line UserError otherwise."""
  n = setting(cfg, "mixed_precision_res")
  if isinstance(n, bool) or not isinstance(n, int) or n < 0:
    raise UserError(f"model.mixed_precision_res must be an integer >= 0, got {n!r}")
  if n and setting(cfg, "compute_dtype") != "float32":
    raise UserError(f"model.mixed_precision_res={n} needs model.compute_dtype=float32 (bfloat16 "
                    "already computes every resolution in bfloat16)")
  if n and setting(cfg, "conv_clamp") is None:
    raise UserError(f"model.mixed_precision_res={n} needs model.conv_clamp, as stylegan2-ada "
                    "pairs num_fp16_res with conv_clamp=256: add --config.model.conv_clamp=256")
  return n


def stylegan2_generator(cfg: ml_collections.ConfigDict) -> stylegan2.Generator:
  return stylegan2.Generator(
      resolution=cfg.resolution, z_dim=cfg.z_dim, w_dim=cfg.w_dim, n_mlp=cfg.n_mlp,
      lr_mlp=cfg.lr_mlp, channels=channel_table(cfg), dtype=compute_dtype(cfg),
      c_dim=int(setting(cfg, "c_dim")), conv_clamp=setting(cfg, "conv_clamp"),
      mixed_precision_res=mixed_precision_res(cfg))


def stylegan2_discriminator(cfg: ml_collections.ConfigDict) -> stylegan2.Discriminator:
  return stylegan2.Discriminator(
      resolution=cfg.resolution, channels=channel_table(cfg),
      mbstd_group_size=cfg.mbstd_group_size,
      mbstd_num_channels=setting(cfg, "mbstd_num_channels"), dtype=compute_dtype(cfg),
      conv_clamp=setting(cfg, "conv_clamp"), mixed_precision_res=mixed_precision_res(cfg),
      c_dim=int(setting(cfg, "c_dim")), cmap_dim=int(setting(cfg, "cmap_dim")),
      mapping_layers=int(setting(cfg, "d_mapping_layers")),
      lr_mlp=cfg.lr_mlp)


_D = STYLEGAN2_DEFAULTS


def stylegan2_model_config(resolution: int, *, z_dim: int = _D["z_dim"],
                           w_dim: int = _D["w_dim"], n_mlp: int = _D["n_mlp"],
                           channel_multiplier: int = _D["channel_multiplier"],
                           channel_base: int = _D["channel_base"],
                           channel_max: int = _D["channel_max"],
                           mbstd_group_size: int = _D["mbstd_group_size"],
                           c_dim: int = _D["c_dim"],
                           conv_clamp: float | None = _D["conv_clamp"],
                           mixed_precision_res: int = _D["mixed_precision_res"]
                           ) -> ml_collections.ConfigDict:
  """The ``config.model`` section of a StyleGAN2 (defaults: :data:`STYLEGAN2_DEFAULTS`,
  rosinality config-f).

  stylegan2-ada switches: ``c_dim`` > 0 makes G and D conditional on (N, c_dim) labels
  (``cmap_dim`` 0 = D's 4 px width, ``d_mapping_layers`` its label mapping's depth);
  ``conv_clamp`` clips conv outputs (None: off, held as a float placeholder so that
  ``--config.model.conv_clamp=256`` can still set it: fine-tuning NVIDIA's networks needs it);
  ``mixed_precision_res`` N > 0 computes the top N resolutions of G and D in bfloat16
  (:func:`mixed_precision_res`; it needs ``conv_clamp``).
  """
  if conv_clamp is None:
    conv_clamp = ml_collections.config_dict.placeholder(float)
  return ml_collections.ConfigDict(dict(
      kind="stylegan2", resolution=resolution, **dict(
          STYLEGAN2_DEFAULTS, z_dim=z_dim, w_dim=w_dim, n_mlp=n_mlp,
          channel_multiplier=channel_multiplier, channel_base=channel_base,
          channel_max=channel_max, mbstd_group_size=mbstd_group_size, c_dim=c_dim,
          conv_clamp=conv_clamp, mixed_precision_res=mixed_precision_res)))
