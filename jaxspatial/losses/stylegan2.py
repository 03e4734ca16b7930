"""StyleGAN2's objective (Karras et al. 2020, as stylegan2-ada's ``StyleGAN2Loss``) as pure
functions: the non-saturating logistic game, R1 on real images for D, and the path-length
penalty for G. Lazy regularisation (a regulariser every k steps, its weight times k) and the
optimiser updates are the training step's (:mod:`jaxspatial.training.gan_step`).

Logits are D's raw outputs ``D(x)`` (N,); ``softplus(t) = log(1 + e^t)``, so
``softplus(-t) = -log σ(t)`` and ``softplus(t) = -log(1 - σ(t))``.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array


def d_logistic_loss(real_logits: Array, fake_logits: Array) -> Array:
  """The discriminator's logistic loss (Goodfellow et al. 2014)::

      L_D = E_z[softplus(D(G(z)))] + E_x[softplus(-D(x))]
          = -E_x[log σ(D(x))] - E_z[log(1 - σ(D(G(z))))]
  """
  return jax.nn.softplus(fake_logits).mean() + jax.nn.softplus(-real_logits).mean()


def g_nonsaturating_loss(fake_logits: Array) -> Array:
  """The generator's non-saturating loss::

      L_G = E_z[softplus(-D(G(z)))] = -E_z[log σ(D(G(z)))]
  """
  return jax.nn.softplus(-fake_logits).mean()


def r1_penalty(d_fn: Callable[[Array], Array], real: Array) -> Array:
  """R1 (Mescheder et al. 2018), the squared norm of D's input gradient on real images::

      R1 = E_x[ ||∇_x D(x)||² ]

  ``d_fn``: images (N, H, W, C) -> logits (N,), each logit a function of its own image only
  (minibatch-stddev couples samples; as in stylegan2-ada, the gradient of the summed logits
  is used). The loss is ``γ/2 · R1``.
  """
  grad = jax.grad(lambda x: d_fn(x).sum())(real)
  return jnp.sum(jnp.square(grad), axis=(1, 2, 3)).mean()


def path_lengths(synthesize: Callable[[Array], Array], ws: Array, y: Array) -> Array:
  """Per-sample path lengths ``|J_w^T y|`` (N,), with ``J_w = ∂ synthesize(ws) / ∂ ws``::

      |J_w^T y| = sqrt( mean_layers Σ_dims (∂ Σ_pixels synthesize(ws) · y / ∂ ws)² )

  ``y`` (N, H, W, 3) is the random image direction, ``N(0, I) / sqrt(H W)`` in StyleGAN2.
  The mean over the W+ layers (axis 1) is stylegan2-ada's ``.square().sum(2).mean(1)``.
  """
  n = ws.shape[0]
  grad = jax.grad(lambda ws: jnp.sum(synthesize(ws) * y))(ws)
  return jnp.sqrt(jnp.sum(jnp.square(grad).reshape(n, -1), axis=1) / ws.shape[1])


def path_length_penalty(synthesize: Callable[[Array], Array], ws: Array, y: Array,
                        pl_mean: Array, decay: float) -> tuple[Array, Array]:
  """The path-length penalty and the updated running mean ``a``::

      a'  = a + decay · (E[|J_w^T y|] − a)
      P   = E[ (|J_w^T y| − a')² ]        (a' held constant: no gradient through it)

  Returns ``(P, a')``; the loss is ``pl_weight · P``.
  """
  lengths = path_lengths(synthesize, ws, y)
  pl_mean = jax.lax.stop_gradient(pl_mean + decay * (jnp.mean(lengths) - pl_mean))
  return jnp.mean(jnp.square(lengths - pl_mean)), pl_mean
