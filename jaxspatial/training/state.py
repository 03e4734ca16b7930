"""GAN training state, optimisers with the lazy-regularisation correction, and EMA."""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import optax
from jax.flatten_util import ravel_pytree


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


def make_optimizers(config: ml_collections.ConfigDict, per_leaf: bool = False):
  """(G optimiser, D optimiser) for ``config.optim`` / ``config.loss``.

  Each is :func:`adam` over one vector holding all of its network's parameters
  (``optax.flatten``): every element gets the update one Adam per parameter array gives, traced
  as a few operations on one vector instead of a few per array. Its state is
  ``(ScaleByAdamState(count, mu, nu), EmptyState())`` with ``mu`` and ``nu`` one float32 vector
  each, the parameters raveled in tree order. (XLA splits the vector update back into
  per-array kernels, so the compile time moves little: docs/benchmarks.md, "Compile time".)
  ``per_leaf=True`` gives the optimisers training checkpoints were written with before (one
  moment array per parameter array), which :func:`flat_optimizer_state` converts.
  """
  o, loss = config.optim, config.loss
  g_ratio = lazy_regularization_ratio(loss.pl_every, loss.pl_weight > 0)
  d_ratio = lazy_regularization_ratio(loss.r1_every, loss.r1_gamma > 0)
  opts = (adam(o.g_lr, o.b1, o.b2, o.eps, g_ratio), adam(o.d_lr, o.b1, o.b2, o.eps, d_ratio))
  return opts if per_leaf else tuple(optax.flatten(opt) for opt in opts)


def flat_optimizer_state(per_leaf: Any) -> Any:
  """A per-leaf optimiser state (``make_optimizers(..., per_leaf=True)``) in the flat layout:
  every parameter-shaped subtree (Adam's ``mu``, ``nu``) becomes one vector, raveled in the
  order ``optax.flatten`` concatenates the parameters in (``jax.tree.flatten``'s); the step
  count is kept. Training resumes from it exactly as from the per-leaf state."""
  return jax.tree.map(lambda x: ravel_pytree(x)[0] if isinstance(x, dict) else x, per_leaf,
                      is_leaf=lambda x: isinstance(x, dict))


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
