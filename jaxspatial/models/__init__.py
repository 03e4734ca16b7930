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

from jaxspatial.models import stylegan2

_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def channel_table(cfg: ml_collections.ConfigDict) -> stylegan2.ChannelTable:
  return stylegan2.ChannelTable(
      channel_multiplier=int(cfg.get("channel_multiplier", 2)),
      channel_base=int(cfg.get("channel_base", 0)),
      channel_max=int(cfg.get("channel_max", 512)))


def compute_dtype(cfg: ml_collections.ConfigDict):
  name = cfg.get("compute_dtype", "float32")
  if name not in _DTYPES:
    raise ValueError(f"model.compute_dtype must be one of {sorted(_DTYPES)}, got {name!r}")
  return _DTYPES[name]


def stylegan2_generator(cfg: ml_collections.ConfigDict) -> stylegan2.Generator:
  return stylegan2.Generator(
      resolution=cfg.resolution, z_dim=cfg.z_dim, w_dim=cfg.w_dim, n_mlp=cfg.n_mlp,
      lr_mlp=cfg.lr_mlp, channels=channel_table(cfg), dtype=compute_dtype(cfg),
      c_dim=int(cfg.get("c_dim", 0)), conv_clamp=cfg.get("conv_clamp"))


def stylegan2_discriminator(cfg: ml_collections.ConfigDict) -> stylegan2.Discriminator:
  return stylegan2.Discriminator(
      resolution=cfg.resolution, channels=channel_table(cfg),
      mbstd_group_size=cfg.mbstd_group_size,
      mbstd_num_channels=cfg.get("mbstd_num_channels", 1), dtype=compute_dtype(cfg),
      conv_clamp=cfg.get("conv_clamp"), c_dim=int(cfg.get("c_dim", 0)),
      cmap_dim=int(cfg.get("cmap_dim", 0)), mapping_layers=int(cfg.get("d_mapping_layers", 8)),
      lr_mlp=cfg.lr_mlp)


def stylegan2_model_config(resolution: int, *, z_dim: int = 512, w_dim: int = 512,
                           n_mlp: int = 8, channel_multiplier: int = 2,
                           channel_base: int = 0, channel_max: int = 512,
                           mbstd_group_size: int = 4, c_dim: int = 0,
                           conv_clamp: float | None = None) -> ml_collections.ConfigDict:
  """The ``config.model`` section of a StyleGAN2 (defaults: rosinality config-f).

  stylegan2-ada switches: ``c_dim`` > 0 makes G and D conditional on (N, c_dim) labels
  (``cmap_dim`` 0 = D's 4 px width, ``d_mapping_layers`` its label mapping's depth);
  ``conv_clamp`` clips conv outputs (None: off).
  """
  return ml_collections.ConfigDict(dict(
      kind="stylegan2", resolution=resolution, z_dim=z_dim, w_dim=w_dim, n_mlp=n_mlp,
      lr_mlp=0.01, channel_multiplier=channel_multiplier, channel_base=channel_base,
      channel_max=channel_max, mbstd_group_size=mbstd_group_size, mbstd_num_channels=1,
      compute_dtype="float32", c_dim=c_dim, conv_clamp=conv_clamp, cmap_dim=0,
      d_mapping_layers=8))
