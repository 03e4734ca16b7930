"""StyleGAN2's objective (``jaxspatial.losses.stylegan2``) against independent computations:
numpy for the logistic losses, closed forms and finite differences for R1, a hand-computed
Jacobian for the path length."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxspatial import families
from jaxspatial import models as models_lib
from jaxspatial.losses import stylegan2 as L

RNG = np.random.default_rng(0)


def _softplus(t):
  return np.logaddexp(0.0, np.asarray(t, np.float64))


def test_logistic_losses_match_numpy():
  real, fake = RNG.normal(0, 3, 7).astype(np.float32), RNG.normal(0, 3, 7).astype(np.float32)
  want_d = _softplus(fake).mean() + _softplus(-real).mean()
  want_g = _softplus(-fake).mean()
  np.testing.assert_allclose(float(L.d_logistic_loss(real, fake)), want_d, rtol=1e-6)
  np.testing.assert_allclose(float(L.g_nonsaturating_loss(fake)), want_g, rtol=1e-6)
  # -log sigmoid form, and the limits: a perfect D costs nothing, a fooled one a lot
  sig = lambda t: 1 / (1 + np.exp(-np.asarray(t, np.float64)))  # noqa: E731
  np.testing.assert_allclose(want_d, -np.log(sig(real)).mean() - np.log(1 - sig(fake)).mean(),
                             rtol=1e-9)
  assert float(L.d_logistic_loss(jnp.full(3, 30.0), jnp.full(3, -30.0))) < 1e-12
  assert float(L.g_nonsaturating_loss(jnp.full(3, -30.0))) == pytest.approx(30.0)


def test_r1_penalty_of_a_linear_and_a_quadratic_discriminator():
  x = jnp.asarray(RNG.normal(size=(3, 4, 4, 2)), jnp.float32)
  a = jnp.asarray(RNG.normal(size=(4, 4, 2)), jnp.float32)
  linear = lambda x: jnp.sum(x * a, axis=(1, 2, 3))                 # noqa: E731  grad = a
  np.testing.assert_allclose(float(L.r1_penalty(linear, x)), float(jnp.sum(a * a)), rtol=1e-5)
  b = jnp.asarray(RNG.uniform(0.5, 2, size=(4, 4, 2)), jnp.float32)
  quadratic = lambda x: 0.5 * jnp.sum(b * x * x, axis=(1, 2, 3))    # noqa: E731  grad = b x
  want = np.mean(np.sum(np.square(np.asarray(b * x)), axis=(1, 2, 3)))
  np.testing.assert_allclose(float(L.r1_penalty(quadratic, x)), want, rtol=1e-5)


def test_r1_penalty_matches_finite_differences():
  x = np.asarray(RNG.normal(size=(2, 3, 3, 1)), np.float32)
  w = jnp.asarray(RNG.normal(size=(3, 3, 1)), jnp.float32)
  d = lambda x: jnp.sum(jnp.tanh(x * w) + 0.3 * jnp.sin(2 * x), axis=(1, 2, 3))  # noqa: E731
  eps = 1e-2
  grad = np.zeros_like(x, np.float64)
  for idx in np.ndindex(x.shape):
    e = np.zeros_like(x)
    e[idx] = eps
    grad[idx] = (float(d(jnp.asarray(x + e))[idx[0]]) -
                 float(d(jnp.asarray(x - e))[idx[0]])) / (2 * eps)
  want = np.mean(np.sum(grad ** 2, axis=(1, 2, 3)))
  np.testing.assert_allclose(float(L.r1_penalty(d, jnp.asarray(x))), want, rtol=1e-3)


def _lengths_by_hand(jacobian, y):
  """|J^T y| = sqrt(mean_layers sum_dims (J^T y)^2) per sample, J (N, P, layers, dims)."""
  jty = np.einsum("npld,np->nld", jacobian, y.reshape(len(y), -1))
  return np.sqrt(np.mean(np.sum(jty ** 2, axis=2), axis=1))


def test_path_length_of_a_linear_generator_by_hand():
  n, layers, dims, res = 3, 4, 5, 2
  a = RNG.normal(size=(layers, dims, res * res * 3)).astype(np.float32)
  synthesize = lambda ws: jnp.einsum("nld,ldp->np", ws, a).reshape(n, res, res, 3)  # noqa: E731
  ws = jnp.asarray(RNG.normal(size=(n, layers, dims)), jnp.float32)
  y = RNG.normal(size=(n, res, res, 3)).astype(np.float32) / res
  jacobian = np.broadcast_to(np.transpose(a, (2, 0, 1))[None], (n, res * res * 3, layers, dims))
  want = _lengths_by_hand(jacobian, y)
  np.testing.assert_allclose(np.asarray(L.path_lengths(synthesize, ws, jnp.asarray(y))), want,
                             rtol=1e-5)
  a_prev, decay = 0.7, 0.01
  a_new = a_prev + decay * (want.mean() - a_prev)
  penalty, mean = L.path_length_penalty(synthesize, ws, jnp.asarray(y), jnp.float32(a_prev),
                                        decay)
  np.testing.assert_allclose(float(mean), a_new, rtol=1e-6)
  np.testing.assert_allclose(float(penalty), np.mean((want - a_new) ** 2), rtol=1e-5)


def test_path_length_of_a_tiny_stylegan2_against_its_full_jacobian():
  cfg = models_lib.stylegan2_model_config(4, z_dim=4, w_dim=4, n_mlp=1, channel_base=16,
                                          channel_max=4)
  g = families.build_generator(cfg)
  v = g.init(jax.random.key(0), jnp.zeros((1, 4)))
  ws = jax.random.normal(jax.random.key(1), (2, g.num_ws, 4))
  synthesize = lambda ws: g.apply(v, ws, "const", method=type(g).synthesize)  # noqa: E731
  y = np.asarray(jax.random.normal(jax.random.key(2), (2, 4, 4, 3))) / 4
  full = np.asarray(jax.jacfwd(synthesize)(ws))              # (2, 4, 4, 3, 2, layers, dims)
  per_sample = np.stack([full[i, ..., i, :, :].reshape(4 * 4 * 3, g.num_ws, 4)
                         for i in range(2)])
  np.testing.assert_allclose(np.asarray(L.path_lengths(synthesize, ws, jnp.asarray(y))),
                             _lengths_by_hand(per_sample, y), rtol=1e-4)
