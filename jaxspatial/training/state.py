"""GAN training state, optimisers with the lazy-regularisation correction, and EMA."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax


@flax.struct.dataclass
class GANState:
  """Everything a GAN run carries from step to step (replicated over the mesh).

  ``g``/``g_ema`` hold {"params", "buffers"}; ``d`` holds {"params"}. There is no RNG
  field: step keys are ``fold_in(key(seed), step)``, so a resumed run draws the same numbers.
  ``augment`` is ADA's {"p", "sign_sum", "sign_count"} (:mod:`jaxspatial.training.augment`);
  with ``step`` (images seen = step * batch_size) it is what a resumed run needs to go on
  augmenting as if it had not stopped.
  """
  step: jax.Array
  g: Any
  g_ema: Any
  d: Any
  opt_g: Any
  opt_d: Any
  pl_mean: jax.Array
  augment: Any


def finite_gradients(grads: Any) -> Any:
  """Gradients with NaN -> 0 and +-Inf -> +-1e5, as stylegan2-ada's training loop does
  (``nan_to_num`` on every parameter's gradient before the optimiser step).

  A batch whose loss or gradient is not finite then leaves the parameters it touched about
  where they were, instead of turning them and every later checkpoint into NaN; the step's
  logged loss and ``grad_norm/*`` (taken before this) still show it.
  """
  return jax.tree.map(lambda g: jnp.nan_to_num(g, nan=0.0, posinf=1e5, neginf=-1e5), grads)


def lazy_regularization_ratio(every: int, enabled: bool) -> float:
  """stylegan2-ada's ``mb_ratio = k / (k + 1)`` for a regulariser run every k steps."""
  return every / (every + 1) if enabled else 1.0


def adam(lr: float, b1: float, b2: float, eps: float, ratio: float) -> optax.GradientTransformation:
  """Adam with lr and betas corrected for lazy regularisation: lr·r, β^r (r = mb_ratio)."""
  return optax.adam(lr * ratio, b1=b1 ** ratio, b2=b2 ** ratio, eps=eps)


def make_optimizers(config: ml_collections.ConfigDict):
  """(G optimiser, D optimiser) for ``config.optim`` / ``config.loss``."""
  o, loss = config.optim, config.loss
  g_ratio = lazy_regularization_ratio(loss.pl_every, loss.pl_weight > 0)
  d_ratio = lazy_regularization_ratio(loss.r1_every, loss.r1_gamma > 0)
  return (adam(o.g_lr, o.b1, o.b2, o.eps, g_ratio), adam(o.d_lr, o.b1, o.b2, o.eps, d_ratio))


def ema_beta(config: ml_collections.ConfigDict, step: jax.Array) -> jax.Array:
  """Per-step EMA decay with a half-life of ``ema_kimg`` thousand images.

  ``beta = 0.5 ** (batch_size / ema_nimg)`` with the *global* batch size, so the half-life
  in images is the same on 1 or 1000 devices; with ``ema_rampup`` r the half-life is
  ``min(ema_nimg, r * images_seen)`` (stylegan2-ada).
  """
  ema_nimg = config.ema_kimg * 1000.0
  if config.ema_rampup:
    seen = (step.astype(jnp.float32) + 1.0) * config.batch_size
    ema_nimg = jnp.minimum(ema_nimg, seen * config.ema_rampup)
  return 0.5 ** (config.batch_size / jnp.maximum(ema_nimg, 1e-8))


def ema_update(ema: Any, new: Any, beta: jax.Array) -> Any:
  """``ema <- new + beta (ema - new)`` on params; buffers are copied from ``new``."""
  params = jax.tree.map(lambda e, n: n + beta * (e - n), ema["params"], new["params"])
  return {**new, "params": params}
