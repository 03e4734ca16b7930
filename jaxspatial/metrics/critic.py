"""The critic FD: a Fréchet distance in a trained discriminator's features.

FID needs Inception weights, which a machine without network access may not have. On a
domain where a GAN has been trained (the embedded shapes dataset), that GAN's discriminator is
a feature extractor that knows the domain: ``critic_fd`` is the Fréchet distance between
Gaussians fitted to its globally average-pooled block features of two image sets. It compares
models only when they are judged by the *same* critic, preferably one trained independently of
the models compared.

The critic network itself (:class:`~jaxspatial.nets.critic.Critic`, the critic file, the
LPIPS-like :func:`~jaxspatial.nets.critic.feature_distance`) is :mod:`jaxspatial.nets.critic`;
this module is the evaluation built on it.
"""

from __future__ import annotations

import pathlib
from typing import Sequence

import numpy as np

from jaxspatial.metrics import fid
from jaxspatial.nets.critic import FEATURE_RESOLUTIONS, Critic, critic_from_discriminator, \
    read_critic_file


def load_critic_file(path: str | pathlib.Path,
                     resolutions: Sequence[int] = FEATURE_RESOLUTIONS) -> Critic:
  """The :class:`~jaxspatial.nets.critic.Critic` saved by
  :func:`~jaxspatial.nets.critic.save_critic_file`."""
  from jaxspatial import families
  config, d_vars = read_critic_file(path)
  return critic_from_discriminator(families.build_discriminator(config.model), d_vars, resolutions)


def batched_features(critic: Critic, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
  """The critic's features of ``images`` (n, R, R, 3), ``batch_size`` at a time -> (n, dim)."""
  return np.concatenate([critic.features(images[i:i + batch_size])
                         for i in range(0, len(images), batch_size)])


def frechet_from_features(a: np.ndarray, b: np.ndarray) -> float:
  """Fréchet distance between Gaussians fitted to feature sets (n, dim) and (m, dim)."""
  return fid.frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0),
                              np.cov(b, rowvar=False))


def critic_fd(critic: Critic, a: np.ndarray, b: np.ndarray, batch_size: int = 64) -> float:
  """Fréchet distance between image sets ``a`` and ``b`` (n, R, R, 3) in the critic's
  feature space."""
  return frechet_from_features(batched_features(critic, a, batch_size),
                               batched_features(critic, b, batch_size))
