"""SSN's training plug-in: how the shared GAN step drives an SSN (spatial latents, R_D) and
how a run starts from a StyleGAN2 (paper §3.4)."""

from __future__ import annotations

import functools
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections

from jaxspatial import checkpoint, losses
from jaxspatial import models as models_lib
from jaxspatial.errors import UserError
from jaxspatial.losses import ssn as losses_ssn
from jaxspatial.models import ssn as ssn_lib
from jaxspatial.training import gan_step

Array = jax.Array


class SSNPlugin(gan_step.StyleGAN2Plugin):
  """How the shared GAN step drives an SSN: spatial latents and the R_D regulariser.

  Config keys read (``loss.*``): ``distortion_weight`` (λ_D; 0 disables R_D),
  ``distortion_reduction`` ("mean" | "sum", see :mod:`jaxspatial.losses.ssn`),
  ``distortion_batch_shrink`` (R_D on ``batch // shrink`` samples).
  """

  @property
  def grid(self) -> tuple[int, int]:
    return ssn_lib.grid_of(self.config.model)

  def _latent_shape(self, n: int) -> tuple[int, ...]:
    return (n, *self.grid, self.config.model.z_dim)

  def sample_inputs(self, key: Array, n: int) -> dict[str, Array]:
    k1, k2, k3 = jax.random.split(key, 3)
    shape = self._latent_shape(n)
    return {"z": jax.random.normal(k1, shape), "z_mix": jax.random.normal(k2, shape),
            "z_resample": jax.random.normal(k3, shape)}

  def init_inputs(self) -> tuple:
    return (jnp.zeros(self._latent_shape(1)),)

  def init_models(self, path: str) -> dict:
    """An SSN checkpoint as it is, or a StyleGAN2 one transferred (paper §3.4)."""
    return transfer_init_models(path, self.config.model)

  def extra_generator_loss(self, g_vars: Any, d_vars: Any, inputs: dict, ws: Array,
                           fake: Array, key: Array, d_features: dict | None = None
                           ) -> tuple[Array, dict]:
    """``λ_D · R_D`` on fresh images of (z, z̃) without style mixing, one noise draw for both."""
    get = functools.partial(losses.setting, self.config.loss,
                            defaults=losses_ssn.DISTORTION_DEFAULTS)
    weight = float(get("distortion_weight"))
    if weight <= 0:
      return jnp.zeros((), jnp.float32), {}
    k_block, k_noise = jax.random.split(key)
    n = max(inputs["z"].shape[0] // int(get("distortion_batch_shrink")), 1)

    def generate(z: Array) -> Array:
      w = self.mapping(g_vars, z)
      ws_z = jnp.broadcast_to(w[:, None], (w.shape[0], self.num_ws) + w.shape[1:])
      return self.synthesize(g_vars, ws_z, inputs, k_noise)

    reg, _ = losses_ssn.distortion_regularizer(
        generate, inputs["z"][:n], inputs["z_resample"][:n], k_block,
        reduction=get("distortion_reduction"))
    return weight * reg, {"distortion_reg": reg}


def transfer_init_models(path: str | pathlib.Path,
                         model_cfg: ml_collections.ConfigDict) -> dict:
  """Models to start SSN training from (``config.init_from``): an SSN checkpoint as it is,
  or a StyleGAN2 checkpoint transferred with ``model_cfg``'s grid and encoder (paper §3.4).

  Returns ``{"g", "g_ema", "d"}`` (whichever the checkpoint has; ``g`` falls back to
  ``g_ema``). UserError if the architectures differ.
  """
  src_config = checkpoint.read_config(path, kind=("stylegan2", "ssn"), user="SSN training")
  models = checkpoint.restore_models(path)
  if src_config.model.kind == "stylegan2":
    models, src_config, _ = ssn_lib.transfer_from_stylegan2(
        models, src_config, [], grid=ssn_lib.grid_of(model_cfg),
        encoder_blocks=int(models_lib.setting(model_cfg, "encoder_blocks", ssn_lib.SSN_DEFAULTS)),
        style_upsample=models_lib.setting(model_cfg, "style_upsample", ssn_lib.SSN_DEFAULTS))
  keys = ("resolution", "z_dim", "w_dim", "n_mlp", "grid_h", "grid_w", "encoder_blocks")
  diff = [k for k in keys if src_config.model.get(k) != model_cfg.get(k)]
  if ssn_lib.build_generator(src_config.model).channels != ssn_lib.build_generator(
      model_cfg).channels:
    diff.append("channels")
  if diff:
    raise UserError(f"{path} does not match config.model in {', '.join(diff)}")
  if "g" not in models and "g_ema" in models:
    models["g"] = models["g_ema"]
  return models
