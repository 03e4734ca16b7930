"""A trained discriminator as a feature network: the critic.

On a domain where a GAN has been trained (the embedded shapes dataset), that GAN's
discriminator is a feature extractor that knows the domain, with no downloaded weights:

* :class:`Critic` (:func:`critic_from_model`, :func:`critic_from_discriminator`): its globally
  average-pooled block features (by default the 4 and 8 px blocks, the most semantic ones) and
  its mean logit, a per-image realism score; the feature network of the critic FD
  (:mod:`jaxspatial.metrics.critic`, the evaluation);
* :func:`feature_maps` / :func:`feature_distance`: an LPIPS-like distance between two images in
  the critic's spatial features, pure and differentiable (the perceptual loss of projection,
  :mod:`jaxspatial.edit.projection`, when no LPIPS weights exist);
* the critic file (:func:`save_critic_file`, :func:`read_critic_file`): the discriminator
  alone as one small ``.npz``, so that a critic shared by many experiments is a committed file.

A network, beside LPIPS in this layer, so that an edit's loss or a training objective uses it
without importing the evaluation code of ``metrics``. The discriminator module itself is
built by the caller (``models.build_discriminator``): this layer does not import ``models``.
"""

from __future__ import annotations

import json
import pathlib
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import traverse_util

from jaxspatial.errors import UserError
from jaxspatial.nets.lpips_net import unit_normalise

FEATURE_RESOLUTIONS = (4, 8)
CRITIC_FILE_SUFFIX = ".npz"


class Critic(NamedTuple):
  """``features(x)``: images (n, R, R, 3) in [-1, 1] -> (n, dim) pooled block features;
  ``logits(x)`` -> (n,); R = ``resolution``, the discriminator's."""
  features: Callable[[np.ndarray], np.ndarray]
  logits: Callable[[np.ndarray], np.ndarray]
  dim: int
  resolution: int


def critic_from_model(model, resolutions: Sequence[int] = FEATURE_RESOLUTIONS) -> Critic:
  """The :class:`Critic` of a loaded StyleGAN2-family model's discriminator, with the
  globally average-pooled block features at ``resolutions`` concatenated."""
  d, d_vars = getattr(model, "discriminator", None), getattr(model, "d_vars", None)
  if d is None or d_vars is None:
    raise UserError(f"the critic {model.path} holds no discriminator ('d')")
  return critic_from_discriminator(d, d_vars, resolutions)


def critic_from_discriminator(d, d_vars, resolutions: Sequence[int] = FEATURE_RESOLUTIONS
                              ) -> Critic:
  """The :class:`Critic` of discriminator module ``d`` with variables ``d_vars``."""
  bad = [r for r in resolutions if r >= d.resolution or r < 4]
  if bad:
    raise UserError(f"the critic has no block features at {bad} px "
                    f"(its blocks are 4..{d.resolution // 2} px)")

  @jax.jit
  def apply(variables, x):
    logits, feats = d.apply(variables, x, return_features=True)
    return jnp.concatenate([feats[r].mean(axis=(1, 2)) for r in resolutions], -1), logits

  def checked(x):
    x = np.asarray(x, np.float32)
    if x.ndim != 4 or x.shape[1:] != (d.resolution, d.resolution, 3):
      raise UserError(f"the critic scores (n, {d.resolution}, {d.resolution}, 3) images, "
                      f"got {x.shape}")
    return x

  dim = sum(d.channels(r) for r in resolutions)
  return Critic(features=lambda x: np.asarray(apply(d_vars, checked(x))[0]),
                logits=lambda x: np.asarray(apply(d_vars, checked(x))[1]),
                dim=dim, resolution=d.resolution)


def save_critic_file(model, path: str | pathlib.Path) -> pathlib.Path:
  """Writes ``model``'s discriminator alone as one small ``.npz`` (its ``config`` as JSON
  and every variable under ``d/<collection>/<module path>``), so that a critic shared by
  many experiments is a committed file of its own, not a training run's folder."""
  d_vars = getattr(model, "d_vars", None)
  if d_vars is None:
    raise UserError(f"{model.path} holds no discriminator ('d') to save as a critic")
  flat = traverse_util.flatten_dict(jax.device_get(d_vars), sep="/")
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp.npz")
  with open(tmp, "wb") as f:
    np.savez(f, config=np.asarray(model.config.to_json(sort_keys=True)),
             **{f"d/{k}": np.asarray(v) for k, v in sorted(flat.items())})
  tmp.replace(path)
  return path


def read_critic_file(path: str | pathlib.Path) -> tuple[ml_collections.ConfigDict, dict]:
  """(the run's config, the discriminator's variables) of a file :func:`save_critic_file`
  wrote; build the module with ``families.build_discriminator(config.model)``."""
  try:
    with np.load(path) as f:
      config = ml_collections.ConfigDict(json.loads(str(f["config"])))
      flat = {k[2:]: f[k] for k in f.files if k.startswith("d/")}
  except (OSError, ValueError, KeyError) as e:
    raise UserError(f"{path} is not a critic file (written by save_critic_file): {e}") from None
  return config, traverse_util.unflatten_dict(flat, sep="/")


def spatial_resolutions(resolution: int) -> tuple[int, ...]:
  """The discriminator block outputs :func:`feature_maps` reads by default: every block below
  the image resolution, (R/2, R/4, ..., 4)."""
  out, r = [], resolution // 2
  while r >= 4:
    out.append(r)
    r //= 2
  return tuple(out)


def feature_maps(discriminator, d_vars, x: jax.Array,
                 resolutions: Sequence[int] | None = None) -> dict[int, jax.Array]:
  """Unit-normalised (per pixel, over channels) D block outputs of images ``x`` (n, R, R, 3):
  {resolution: (n, r, r, C_r)}. Pure and differentiable; the block outputs come before the
  minibatch-stddev layer, so each image's maps do not depend on the rest of the batch."""
  resolutions = resolutions or spatial_resolutions(discriminator.resolution)
  _, feats = discriminator.apply(d_vars, x, return_features=True)
  return {r: unit_normalise(feats[r].astype(jnp.float32)) for r in resolutions}


def feature_distance(a: dict[int, jax.Array], b: dict[int, jax.Array]) -> jax.Array:
  """LPIPS's form with uniform channel weights on critic features (:func:`feature_maps`):
  ``d(x, y) = Σ_r mean_hw Σ_c (u^r_x - u^r_y)²_c`` -> (n,)."""
  return sum(jnp.mean(jnp.sum(jnp.square(a[r] - b[r]), -1), axis=(1, 2)) for r in a)
