"""The GAN training step shared by StyleGAN2, SSN and SpatialGAN.

One call = one iteration of the stylegan2-ada schedule, all inside one jitted program:

1. D main: non-saturating logistic loss ``softplus(D(G(z))) + softplus(-D(x))``;
2. D reg (every ``r1_every`` steps): R1 ``gamma/2 * |grad_x D(x)|^2``, scaled by the
   interval (lazy regularisation); a second Adam update, as in stylegan2-ada/rosinality;
3. G main: ``softplus(-D(G(z)))`` plus the family's extra loss (SSN's R_D, SpatialGAN's
   GradCAM alignment); ``w_avg`` tracked with beta 0.995;
4. G reg (every ``pl_every`` steps): path-length penalty ``(|J_w^T y| - a)^2``, ``a`` the
   running mean (decay ``pl_decay``), on ``batch / pl_batch_shrink`` samples;
5. EMA of G with a half-life in images that does not depend on the device count.

Optimisers carry the lazy-regularisation lr/beta correction (``state.make_optimizers``).
Which regularisers a step runs is a :class:`Phase`, fixed when the step is built: the trainer
compiles one program per phase and picks it on the host from the step number, as stylegan2-ada
schedules its phases. (A ``lax.cond`` inside one program would do the same on paper, but
XLA:CPU runs weight-gradient convolutions inside a conditional branch ~30x slower than at top
level: the R1 step cost 8 plain steps on the ``demo`` preset.)
Keys are ``fold_in(key(seed), step)`` split per use, so runs are reproducible and resumable.

A *family* adapts the generator: it samples the generator's inputs, maps them to styles
(with style mixing) and synthesises images from styles; see :class:`StyleGAN2Family`.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxspatial.models import stylegan2 as sg2
from jaxspatial.training import state as state_lib

Array = jax.Array
W_AVG_BETA = 0.995


class StyleGAN2Family:
  """How the GAN step drives a StyleGAN2 generator; other families override pieces.

  ``sample_inputs(key, n) -> dict`` of per-sample generator inputs (leading axis n);
  ``styles(g_vars, inputs, key, mixing_prob) -> (ws, w_mean)``; ``synthesize(g_vars, ws,
  inputs, key) -> images``; ``extra_generator_loss(...) -> (loss, metrics)``.
  """

  def __init__(self, config: ml_collections.ConfigDict, generator, discriminator):
    self.config = config
    self.generator = generator
    self.discriminator = discriminator

  @property
  def num_ws(self) -> int:
    return sg2.num_ws(self.config.model.resolution)

  def sample_inputs(self, key: Array, n: int) -> dict[str, Array]:
    k1, k2 = jax.random.split(key)
    z_dim = self.config.model.z_dim
    return {"z": jax.random.normal(k1, (n, z_dim)), "z_mix": jax.random.normal(k2, (n, z_dim))}

  def init_inputs(self) -> tuple:
    """Example positional inputs for ``generator.init``."""
    return (jnp.zeros((1, self.config.model.z_dim)),)

  def init_models(self, path: str) -> dict:
    """Models ``{"g", "g_ema", "d"}`` (those present) to start training from: a checkpoint
    of the same kind (fine-tuning, e.g. a converted PyTorch StyleGAN2)."""
    from jaxspatial.api import checkpoint
    from jaxspatial.cli import UserError
    kind = checkpoint.read_config(path).model.kind
    if kind != self.config.model.kind:
      raise UserError(f"init_from={path} holds a {kind!r} model, this run trains "
                      f"{self.config.model.kind!r}")
    models = checkpoint.restore_models(path)
    if "g" not in models and "g_ema" in models:
      models["g"] = models["g_ema"]
    return models

  def mapping(self, g_vars: Any, z: Array) -> Array:
    return self.generator.apply(g_vars, z, method=type(self.generator).mapping)

  def styles(self, g_vars: Any, inputs: dict, key: Array, mixing_prob: float):
    """Mapped W+ with style mixing: layers >= cutoff take ``z_mix``'s w, where cutoff ~
    U{1..num_ws-1} with probability ``mixing_prob`` and num_ws (no mixing) otherwise."""
    w = self.mapping(g_vars, inputs["z"])
    ws = jnp.broadcast_to(w[:, None], (w.shape[0], self.num_ws) + w.shape[1:])
    if mixing_prob > 0:
      w2 = self.mapping(g_vars, inputs["z_mix"])
      ws = mix_styles(ws, w2, key, mixing_prob)
    return ws, w.reshape(-1, w.shape[-1]).mean(0)

  def synthesize(self, g_vars: Any, ws: Array, inputs: dict, key: Array) -> Array:
    return self.generator.apply(g_vars, ws, "random", method=type(self.generator).synthesize,
                                rngs={"noise": key})

  def render(self, g_vars: Any, inputs: dict) -> Array:
    """Images for sample grids: no style mixing, the stored constant noise."""
    ws, _ = self.styles(g_vars, inputs, jax.random.key(0), 0.0)
    return self.generator.apply(g_vars, ws, "const", method=type(self.generator).synthesize)

  def extra_generator_loss(self, g_vars: Any, d_vars: Any, inputs: dict, ws: Array,
                           fake: Array, key: Array) -> tuple[Array, dict]:
    return jnp.zeros((), jnp.float32), {}


def mix_styles(ws: Array, w2: Array, key: Array, prob: float) -> Array:
  """Per-batch style-mixing cutoff (stylegan2-ada): with probability ``prob`` layers >=
  cutoff ~ U{1..num_ws-1} take ``w2`` (:func:`jaxspatial.models.stylegan2.mix_layers`)."""
  num_ws = ws.shape[1]
  k1, k2 = jax.random.split(key)
  cutoff = jax.random.randint(k1, (), 1, num_ws)
  return sg2.mix_layers(ws, w2, jnp.where(jax.random.uniform(k2) < prob, cutoff, num_ws))


def _adam_step(opt: optax.GradientTransformation, params, opt_state, grads):
  updates, opt_state = opt.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def _global_norm(tree) -> Array:
  return optax.tree.norm(tree)


class Phase(NamedTuple):
  """The lazy regularisers one training step runs."""
  r1: bool
  path_length: bool


def phase_at(config: ml_collections.ConfigDict, step: int) -> Phase:
  """The :class:`Phase` of step ``step`` (a host integer, counted from 0): R1 on multiples of
  ``r1_every`` and path length on multiples of ``pl_every``, each only if its weight is > 0."""
  loss = config.loss
  return Phase(r1=bool(loss.r1_gamma > 0 and step % loss.r1_every == 0),
               path_length=bool(loss.pl_weight > 0 and step % loss.pl_every == 0))


def make_train_step(config: ml_collections.ConfigDict, family: StyleGAN2Family,
                    opt_g: optax.GradientTransformation, opt_d: optax.GradientTransformation,
                    phase: Phase, constrain: Callable[[Array], Array] = lambda x: x):
  """Returns ``train_step(state, batch) -> (state, metrics)`` (pure; jit it with shardings)
  for steps of ``phase``; a regulariser the phase leaves out is not even compiled.

  ``constrain`` pins per-sample arrays drawn inside the step to the batch sharding.
  ``batch["image"]``: (N, H, W, 3) float in [-1, 1], N = the global batch.
  """
  D = family.discriminator
  loss = config.loss

  def inputs_for(key, n):
    return jax.tree.map(constrain, family.sample_inputs(key, n))

  def generate(g_vars, key, n):
    k_in, k_mix, k_noise = jax.random.split(key, 3)
    inputs = inputs_for(k_in, n)
    ws, w_mean = family.styles(g_vars, inputs, k_mix, loss.style_mixing)
    return inputs, ws, w_mean, family.synthesize(g_vars, ws, inputs, k_noise)

  def d_step(state, real, key):
    _, _, _, fake = generate(state.g, key, real.shape[0])
    fake = jax.lax.stop_gradient(fake)

    def d_loss_fn(d_params):
      d_vars = {**state.d, "params": d_params}
      fake_logits = D.apply(d_vars, fake)
      real_logits = D.apply(d_vars, real)
      l = jax.nn.softplus(fake_logits).mean() + jax.nn.softplus(-real_logits).mean()
      return l, {"d_loss": l, "scores/real": real_logits.mean(),
                 "scores/fake": fake_logits.mean()}

    grads, metrics = jax.grad(d_loss_fn, has_aux=True)(state.d["params"])
    metrics["grad_norm/d"] = _global_norm(grads)
    d_params, opt_d_state = _adam_step(opt_d, state.d["params"], state.opt_d, grads)

    def r1_loss_fn(d_params):
      d_vars = {**state.d, "params": d_params}
      real_grad = jax.grad(lambda x: D.apply(d_vars, x).sum())(real)
      penalty = jnp.sum(jnp.square(real_grad), axis=(1, 2, 3)).mean()
      return penalty * (loss.r1_gamma / 2) * loss.r1_every, penalty

    if phase.r1:
      grads, penalty = jax.grad(r1_loss_fn, has_aux=True)(d_params)
      d_params, opt_d_state = _adam_step(opt_d, d_params, opt_d_state, grads)
    else:
      penalty = jnp.zeros((), jnp.float32)
    metrics.update({"r1_penalty": penalty, "r1_applied": float(phase.r1)})
    return state.replace(d={**state.d, "params": d_params}, opt_d=opt_d_state), metrics

  def g_step(state, key):
    k_gen, k_extra = jax.random.split(key)
    n = config.batch_size

    def g_loss_fn(g_params):
      g_vars = {**state.g, "params": g_params}
      inputs, ws, w_mean, fake = generate(g_vars, k_gen, n)
      logits = D.apply(state.d, fake)
      adv = jax.nn.softplus(-logits).mean()
      extra, extra_metrics = family.extra_generator_loss(g_vars, state.d, inputs, ws, fake,
                                                         k_extra)
      return adv + extra, ({"g_loss": adv, **extra_metrics}, w_mean)

    grads, (metrics, w_mean) = jax.grad(g_loss_fn, has_aux=True)(state.g["params"])
    metrics["grad_norm/g"] = _global_norm(grads)
    g_params, opt_g_state = _adam_step(opt_g, state.g["params"], state.opt_g, grads)
    buffers = dict(state.g["buffers"])
    if "w_avg" in buffers:
      buffers["w_avg"] = w_mean + W_AVG_BETA * (buffers["w_avg"] - w_mean)
    return state.replace(g={"params": g_params, "buffers": buffers}, opt_g=opt_g_state), metrics

  def pl_step(state, key):
    n = max(config.batch_size // loss.pl_batch_shrink, 1)
    k_in, k_mix, k_noise, k_y = jax.random.split(key, 4)

    def pl_loss_fn(g_params):
      g_vars = {**state.g, "params": g_params}
      inputs = inputs_for(k_in, n)
      ws, _ = family.styles(g_vars, inputs, k_mix, loss.style_mixing)
      res = config.model.resolution
      y = constrain(jax.random.normal(k_y, (n, res, res, 3))) / res
      ws_grad = jax.grad(
          lambda ws: jnp.sum(family.synthesize(g_vars, ws, inputs, k_noise) * y))(ws)
      lengths = jnp.sqrt(jnp.sum(jnp.square(ws_grad).reshape(n, -1), axis=1) / ws.shape[1])
      pl_mean = state.pl_mean + loss.pl_decay * (jnp.mean(lengths) - state.pl_mean)
      penalty = jnp.mean(jnp.square(lengths - jax.lax.stop_gradient(pl_mean)))
      return penalty * loss.pl_weight * loss.pl_every, (penalty, jax.lax.stop_gradient(pl_mean))

    g_params, opt_g_state, pl_mean = state.g["params"], state.opt_g, state.pl_mean
    if phase.path_length:
      grads, (penalty, pl_mean) = jax.grad(pl_loss_fn, has_aux=True)(g_params)
      g_params, opt_g_state = _adam_step(opt_g, g_params, opt_g_state, grads)
    else:
      penalty = jnp.zeros((), jnp.float32)
    new_state = state.replace(g={**state.g, "params": g_params}, opt_g=opt_g_state,
                              pl_mean=pl_mean)
    return new_state, {"pl_penalty": penalty, "pl_mean": pl_mean,
                       "pl_applied": float(phase.path_length)}

  def train_step(state: state_lib.GANState, batch: dict[str, Array]):
    key = jax.random.fold_in(jax.random.key(config.seed), state.step)
    k_d, k_g, k_pl = jax.random.split(key, 3)
    real = batch["image"]
    state, d_metrics = d_step(state, real, k_d)
    state, g_metrics = g_step(state, k_g)
    state, pl_metrics = pl_step(state, k_pl)
    beta = state_lib.ema_beta(config, state.step)
    state = state.replace(g_ema=state_lib.ema_update(state.g_ema, state.g, beta),
                          step=state.step + 1)
    metrics = {**d_metrics, **g_metrics, **pl_metrics, "ema_beta": beta}
    return state, jax.tree.map(lambda m: jnp.asarray(m, jnp.float32), metrics)

  return train_step


def init_state(config: ml_collections.ConfigDict, family: StyleGAN2Family,
               opt_g: optax.GradientTransformation, opt_d: optax.GradientTransformation,
               key: Array) -> state_lib.GANState:
  """Fresh state: G and D initialised from ``key`` (works under ``jax.eval_shape``)."""
  k_g, k_d = jax.random.split(key)
  g_vars = family.generator.init(k_g, *family.init_inputs())
  res = config.model.resolution
  d_vars = family.discriminator.init(k_d, jnp.zeros((1, res, res, 3)))
  return state_lib.GANState(
      step=jnp.zeros((), jnp.int32), g=g_vars, g_ema=g_vars, d=d_vars,
      opt_g=opt_g.init(g_vars["params"]), opt_d=opt_d.init(d_vars["params"]),
      pl_mean=jnp.zeros((), jnp.float32))
