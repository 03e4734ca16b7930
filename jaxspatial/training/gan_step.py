"""The GAN training step shared by StyleGAN2, SSN and SpatialGAN.

One call = one iteration of the stylegan2-ada schedule, all inside one jitted program:

1. D main: the logistic loss ``softplus(D(G(z))) + softplus(-D(x))``;
2. D reg (every ``r1_every`` steps): R1 ``gamma/2 * |grad_x D(x)|^2``, scaled by the
   interval (lazy regularisation); a second Adam update, as in stylegan2-ada/rosinality;
3. G main: ``softplus(-D(G(z)))`` plus the family's extra loss (SSN's R_D, SpatialGAN's
   GradCAM alignment, lazy with ``loss.align_every``); ``w_avg`` tracked with beta 0.995;
4. G reg (every ``pl_every`` steps): path-length penalty ``(|J_w^T y| - a)^2``, ``a`` the
   running mean (decay ``pl_decay``), on ``batch / pl_batch_shrink`` samples;

The losses themselves (equations in their docstrings) are :mod:`jaxspatial.losses.stylegan2`.
5. EMA of G with a half-life in images that does not depend on the device count.
6. ADA (``config.augment``, :mod:`jaxspatial.training.augment`): every image D sees in steps
   1-3 (reals, fakes, R1's reals) goes through stylegan2-ada's AugmentPipe with probability
   ``state.augment["p"]``, which moves every ``interval`` steps with the sign of D's real logits.
   ``freeze_d`` keeps D's first layers fixed (FreezeD).

Optimisers carry the lazy-regularisation lr/beta correction (``state.make_optimizers``).
With ``model.compute_dtype`` bfloat16 the main terms run in bfloat16 (with
``model.mixed_precision_res`` N instead, the top N resolutions only) and steps 2 and 4 in
float32 (:func:`float32_plugin`); parameters and optimiser state are float32 throughout.
Which regularisers a step runs is a :class:`Phase`, fixed when the step is built: the trainer
compiles one program per phase and picks it on the host from the step number, as stylegan2-ada
schedules its phases. (A ``lax.cond`` inside one program would do the same on paper, but
XLA:CPU runs weight-gradient convolutions inside a conditional branch ~30x slower than at top
level: the R1 step cost 8 plain steps on the ``demo`` preset.)
Keys are ``fold_in(key(seed), step)`` split per use, so runs are reproducible and resumable.

A family's *plug-in* adapts the generator: it samples the generator's inputs, maps them to
styles (with style mixing) and synthesises images from styles; see :class:`StyleGAN2Plugin`
(not to be confused with :class:`jaxspatial.families.Family`, the registry record that names
the plug-in in its ``training`` field).

Conditional models (``model.c_dim > 0``, stylegan2-ada): ``batch["labels"]`` (N, c_dim)
condition D on the reals; each generated batch takes the labels of a random permutation of
the batch's (the dataset's label distribution, as stylegan2-ada draws dataset labels), and D
scores it under those labels.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

from jaxspatial import models as models_lib
from jaxspatial.losses import stylegan2 as sg2_losses
from jaxspatial.models import stylegan2 as sg2
from jaxspatial.training import augment as augment_lib
from jaxspatial.training import state as state_lib

Array = jax.Array
W_AVG_BETA = 0.995


class StyleGAN2Plugin:
  """How the GAN step drives a StyleGAN2 generator; other families' plug-ins subclass it and
  override pieces.

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

  @property
  def c_dim(self) -> int:
    return int(models_lib.setting(self.config.model, "c_dim"))

  def sample_inputs(self, key: Array, n: int) -> dict[str, Array]:
    """z, z_mix and, for a conditional model, ``labels`` cycling through the classes (the
    training step replaces them by dataset labels)."""
    k1, k2 = jax.random.split(key)
    z_dim = self.config.model.z_dim
    inputs = {"z": jax.random.normal(k1, (n, z_dim)), "z_mix": jax.random.normal(k2, (n, z_dim))}
    if self.c_dim:
      inputs["labels"] = jax.nn.one_hot(jnp.arange(n) % self.c_dim, self.c_dim)
    return inputs

  def init_inputs(self) -> tuple:
    """Example positional inputs for ``generator.init``."""
    return (jnp.zeros((1, self.config.model.z_dim)),)

  def label_kwargs(self, labels: Array | None = None, n: int = 1) -> dict:
    """``{"labels": ...}`` for a conditional G or D call (zeros if None), else ``{}``."""
    if not self.c_dim:
      return {}
    return {"labels": jnp.zeros((n, self.c_dim)) if labels is None else labels}

  def init_models(self, path: str) -> dict:
    """Models ``{"g", "g_ema", "d"}`` (those present) to start training from: a checkpoint
    of the same kind (fine-tuning, e.g. a converted PyTorch StyleGAN2)."""
    from jaxspatial import checkpoint
    kind = self.config.model.kind
    checkpoint.read_config(path, kind=kind, name=f"init_from={path}", user=f"a {kind} run")
    models = checkpoint.restore_models(path)
    if "g" not in models and "g_ema" in models:
      models["g"] = models["g_ema"]
    return models

  def mapping(self, g_vars: Any, z: Array, labels: Array | None = None) -> Array:
    return self.generator.apply(g_vars, z, method=type(self.generator).mapping,
                                **({} if labels is None else {"labels": labels}))

  def styles(self, g_vars: Any, inputs: dict, key: Array, mixing_prob: float):
    """Mapped W+ with style mixing: layers >= cutoff take ``z_mix``'s w, where cutoff ~
    U{1..num_ws-1} with probability ``mixing_prob`` and num_ws (no mixing) otherwise."""
    w = self.mapping(g_vars, inputs["z"], inputs.get("labels"))
    ws = jnp.broadcast_to(w[:, None], (w.shape[0], self.num_ws) + w.shape[1:])
    if mixing_prob > 0:
      w2 = self.mapping(g_vars, inputs["z_mix"], inputs.get("labels"))
      ws = mix_styles(ws, w2, key, mixing_prob)
    return ws, w.reshape(-1, w.shape[-1]).mean(0)

  def synthesize(self, g_vars: Any, ws: Array, inputs: dict, key: Array) -> Array:
    return self.generator.apply(g_vars, ws, "random", method=type(self.generator).synthesize,
                                rngs={"noise": key})

  def render(self, g_vars: Any, inputs: dict) -> Array:
    """Images for sample grids: no style mixing, the stored constant noise."""
    ws, _ = self.styles(g_vars, inputs, jax.random.key(0), 0.0)
    return self.generator.apply(g_vars, ws, "const", method=type(self.generator).synthesize)

  reads_d_features = False
  """Whether :meth:`extra_generator_loss` reads D's block outputs of ``fake``
  (``d_features``, ``Discriminator(return_features=True)``)."""

  def extra_generator_loss(self, g_vars: Any, d_vars: Any, inputs: dict, ws: Array,
                           fake: Array, key: Array, d_features: dict | None = None
                           ) -> tuple[Array, dict]:
    return jnp.zeros((), jnp.float32), {}

  def for_phase(self, phase: "Phase") -> "StyleGAN2Plugin":
    """The plug-in that steps of ``phase`` run with (a family with a lazy term of its own
    returns one with that term's weight for the phase; here: the same plug-in)."""
    return self


def mix_styles(ws: Array, w2: Array, key: Array, prob: float) -> Array:
  """Per-batch style-mixing cutoff (stylegan2-ada): with probability ``prob`` layers >=
  cutoff ~ U{1..num_ws-1} take ``w2`` (:func:`jaxspatial.models.stylegan2.mix_layers`)."""
  num_ws = ws.shape[1]
  k1, k2 = jax.random.split(key)
  cutoff = jax.random.randint(k1, (), 1, num_ws)
  return sg2.mix_layers(ws, w2, jnp.where(jax.random.uniform(k2) < prob, cutoff, num_ws))


def float32_plugin(plugin: StyleGAN2Plugin) -> StyleGAN2Plugin:
  """``plugin`` with its generator and discriminator computing in float32 at every
  resolution (the same plugin when they already do). Mixed-precision runs
  (``model.compute_dtype`` bfloat16 or ``model.mixed_precision_res`` > 0) take R1 and the
  path-length penalty through it: both are gradients of gradients and squared norms, kept
  out of reduced precision here (stylegan2-ada runs them through its FP16 blocks)."""
  def f32(module):
    dtype = getattr(module, "dtype", jnp.float32)
    mixed = getattr(module, "mixed_precision_res", 0)
    if dtype == jnp.float32 and not mixed:
      return module
    return module.clone(dtype=jnp.float32, **({"mixed_precision_res": 0} if mixed else {}))
  g, d = f32(plugin.generator), f32(plugin.discriminator)
  if g is plugin.generator and d is plugin.discriminator:
    return plugin
  return type(plugin)(plugin.config, g, d)


def _adam_step(opt: optax.GradientTransformation, params, opt_state, grads, frozen=None):
  """One optimiser step; parameters whose ``frozen`` leaf is True get no gradient and keep
  their value (stylegan2-ada's frozen layers are buffers, outside the optimiser)."""
  if frozen is not None:
    grads = jax.tree.map(lambda g, f: jnp.zeros_like(g) if f else g, grads, frozen)
  updates, opt_state = opt.update(state_lib.finite_gradients(grads), opt_state, params)
  new = optax.apply_updates(params, updates)
  if frozen is not None:
    new = jax.tree.map(lambda n, p, f: p if f else n, new, params, frozen)
  return new, opt_state


def frozen_discriminator_layers(d_params: Any, n: int) -> Any:
  """FreezeD (stylegan2-ada ``--freezed=n``): a tree of bools over D's parameters, True in
  its first ``n`` layers counted from the image as the official discriminator counts them
  (``from_rgb``; then per block, highest resolution first, ``conv1``, ``conv2``, ``skip``).
  The epilogue (``final_*``, ``out``, the label mapping) is never frozen."""
  blocks = sorted((k for k in d_params if k.startswith("blocks_")), key=lambda k: int(k[7:]))
  order = [("from_rgb",)] + [(b, name) for b in blocks for name in ("conv1", "conv2", "skip")]
  frozen = set(order[:n])

  def is_frozen(path, _):
    keys = tuple(getattr(p, "key", p) for p in path)
    return keys[:1] in frozen or keys[:2] in frozen
  return jax.tree_util.tree_map_with_path(is_frozen, d_params)


def _global_norm(tree) -> Array:
  return optax.tree.norm(tree)


class Phase(NamedTuple):
  """The lazy regularisers one training step runs; ``align``: SpatialGAN's GradCAM alignment
  term in the G loss (True on every step unless ``loss.align_every`` > 1)."""
  r1: bool
  path_length: bool
  align: bool = True


def phase_at(config: ml_collections.ConfigDict, step: int) -> Phase:
  """The :class:`Phase` of step ``step`` (a host integer, counted from 0): R1 on multiples of
  ``r1_every`` and path length on multiples of ``pl_every``, each only if its weight is > 0;
  the alignment term on multiples of ``align_every`` (1 when a config has none)."""
  loss = config.loss
  align_every = int(loss.get("align_every", 1))
  return Phase(r1=bool(loss.r1_gamma > 0 and step % loss.r1_every == 0),
               path_length=bool(loss.pl_weight > 0 and step % loss.pl_every == 0),
               align=bool(loss.get("align_weight", 0.0) == 0 or step % align_every == 0))


def schedule_period(config: ml_collections.ConfigDict) -> int:
  """Steps after which :func:`phase_at` repeats: the lcm of the active lazy intervals."""
  loss = config.loss
  return math.lcm(loss.r1_every if loss.r1_gamma > 0 else 1,
                  loss.pl_every if loss.pl_weight > 0 else 1,
                  int(loss.get("align_every", 1)) if loss.get("align_weight", 0) else 1)


@dataclasses.dataclass(frozen=True)
class StepContext:
  """What every part of one training step reads: the run config, the plug-in, the two
  optimisers and ``constrain`` (pins per-sample arrays drawn inside the step to the batch
  sharding) and ``pipe``, the augmentation of every image D sees (None: none)."""
  config: ml_collections.ConfigDict
  plugin: StyleGAN2Plugin
  opt_g: optax.GradientTransformation
  opt_d: optax.GradientTransformation
  constrain: Callable[[Array], Array] = lambda x: x
  pipe: augment_lib.AugmentPipe | None = None

  def augment(self, images: Array, key: Array, p: Array) -> Array:
    """``images`` as D sees them: through the pipe with probability ``p`` (stylegan2-ada's
    ``run_D``), unchanged without one."""
    return images if self.pipe is None else self.pipe(images, key, p)

  def inputs(self, key: Array, n: int, labels: Array | None = None) -> dict[str, Array]:
    """Fresh generator inputs; a conditional model's take a random draw of ``labels``
    (the batch's)."""
    k_in, k_c = jax.random.split(key)
    inputs = self.plugin.sample_inputs(k_in, n)
    if labels is not None:
      inputs["labels"] = jax.random.permutation(k_c, labels)[:n]
    return jax.tree.map(self.constrain, inputs)

  @property
  def float32(self) -> StyleGAN2Plugin:
    """The plug-in computing in float32: R1 and path length run through it."""
    return float32_plugin(self.plugin)

  def generate(self, g_vars: Any, key: Array, n: int, labels: Array | None = None):
    """(inputs, W+, mean w, images) of ``n`` fresh samples, with style mixing."""
    k_in, k_mix, k_noise = jax.random.split(key, 3)
    inputs = self.inputs(k_in, n, labels)
    ws, w_mean = self.plugin.styles(g_vars, inputs, k_mix, self.config.loss.style_mixing)
    return inputs, ws, w_mean, self.plugin.synthesize(g_vars, ws, inputs, k_noise)


def discriminator_step(ctx: StepContext, state: state_lib.GANState, real: Array, key: Array,
                       r1: bool, labels: Array | None = None, aug_key: Array | None = None
                       ) -> tuple[state_lib.GANState, dict]:
  """D's logistic loss on ``real`` (with their ``labels``, conditional models) and fresh
  fakes, then (``r1``) the lazy R1 update. Every image D sees is augmented (``aug_key``), R1's
  gradient is taken through the augmentation to the real images. ``sign_sum``/``sign_count``
  (in the metrics) are the signs of D's real logits, from both passes when R1 runs."""
  D, loss = ctx.plugin.discriminator, ctx.config.loss
  k_fake, k_real, k_r1 = (None,) * 3 if aug_key is None else jax.random.split(aug_key, 3)
  p = state.augment["p"]
  inputs, _, _, fake = ctx.generate(state.g, key, real.shape[0], labels)
  fake = ctx.augment(jax.lax.stop_gradient(fake), k_fake, p)
  real_seen = ctx.augment(real, k_real, p)
  fake_c = ctx.plugin.label_kwargs(inputs.get("labels"))
  real_c = ctx.plugin.label_kwargs(labels)

  def d_loss_fn(d_params):
    d_vars = {**state.d, "params": d_params}
    fake_logits = D.apply(d_vars, fake, **fake_c)
    real_logits = D.apply(d_vars, real_seen, **real_c)
    l = sg2_losses.d_logistic_loss(real_logits, fake_logits)
    signs = augment_lib.sign_statistics(real_logits)
    return l, {"d_loss": l, "scores/real": real_logits.mean(), "scores/fake": fake_logits.mean(),
               "sign_sum": signs[0], "sign_count": signs[1]}

  grads, metrics = jax.grad(d_loss_fn, has_aux=True)(state.d["params"])
  metrics["grad_norm/d"] = _global_norm(grads)
  frozen = frozen_discriminator_layers(state.d["params"], ctx.config.freeze_d)
  d_params, opt_d_state = _adam_step(ctx.opt_d, state.d["params"], state.opt_d, grads, frozen)

  def r1_loss_fn(d_params):
    D32 = ctx.float32.discriminator
    d_fn = lambda x: D32.apply({**state.d, "params": d_params}, ctx.augment(x, k_r1, p), **real_c)
    penalty = sg2_losses.r1_penalty(d_fn, real)
    signs = augment_lib.sign_statistics(jax.lax.stop_gradient(d_fn(real)))
    return penalty * (loss.r1_gamma / 2) * loss.r1_every, (penalty, signs)

  penalty = jnp.zeros((), jnp.float32)
  if r1:
    grads, (penalty, signs) = jax.grad(r1_loss_fn, has_aux=True)(d_params)
    d_params, opt_d_state = _adam_step(ctx.opt_d, d_params, opt_d_state, grads, frozen)
    metrics["sign_sum"] = metrics["sign_sum"] + signs[0]
    metrics["sign_count"] = metrics["sign_count"] + signs[1]
  metrics.update({"r1_penalty": penalty, "r1_applied": float(r1)})
  return state.replace(d={**state.d, "params": d_params}, opt_d=opt_d_state), metrics


def generator_step(ctx: StepContext, state: state_lib.GANState, key: Array,
                   labels: Array | None = None, aug_key: Array | None = None
                   ) -> tuple[state_lib.GANState, dict]:
  """G's non-saturating loss (on the fakes as D sees them: augmented with ``aug_key``) plus
  the family's extra loss; ``w_avg`` tracks the mean w. A family whose extra loss reads D's
  block outputs of the fakes (``reads_d_features``: SpatialGAN's GradCAM) gets them from
  the adversarial D pass when no augmentation stands between, so one D pass (and one backward
  through its lower blocks) serves both terms."""
  k_gen, k_extra = jax.random.split(key)

  def g_loss_fn(g_params):
    g_vars = {**state.g, "params": g_params}
    inputs, ws, w_mean, fake = ctx.generate(g_vars, k_gen, ctx.config.batch_size, labels)
    share = ctx.plugin.reads_d_features and ctx.pipe is None
    out = ctx.plugin.discriminator.apply(state.d, ctx.augment(fake, aug_key, state.augment["p"]),
                                         return_features=share,
                                         **ctx.plugin.label_kwargs(inputs.get("labels")))
    logits, features = out if share else (out, None)
    adv = sg2_losses.g_nonsaturating_loss(logits)
    extra, extra_metrics = ctx.plugin.extra_generator_loss(g_vars, state.d, inputs, ws, fake,
                                                           k_extra, d_features=features)
    return adv + extra, ({"g_loss": adv, **extra_metrics}, w_mean)

  grads, (metrics, w_mean) = jax.grad(g_loss_fn, has_aux=True)(state.g["params"])
  metrics["grad_norm/g"] = _global_norm(grads)
  g_params, opt_g_state = _adam_step(ctx.opt_g, state.g["params"], state.opt_g, grads)
  buffers = dict(state.g["buffers"])
  if "w_avg" in buffers:
    buffers["w_avg"] = w_mean + W_AVG_BETA * (buffers["w_avg"] - w_mean)
  return state.replace(g={"params": g_params, "buffers": buffers}, opt_g=opt_g_state), metrics


def path_length_step(ctx: StepContext, state: state_lib.GANState, key: Array,
                     path_length: bool, labels: Array | None = None
                     ) -> tuple[state_lib.GANState, dict]:
  """The lazy path-length update of G (``path_length``) on ``batch / pl_batch_shrink``."""
  config, loss = ctx.config, ctx.config.loss
  n = max(config.batch_size // loss.pl_batch_shrink, 1)
  k_in, k_mix, k_noise, k_y = jax.random.split(key, 4)

  def pl_loss_fn(g_params):
    g_vars = {**state.g, "params": g_params}
    inputs = ctx.inputs(k_in, n, labels)
    plugin = ctx.float32
    ws, _ = plugin.styles(g_vars, inputs, k_mix, loss.style_mixing)
    res = config.model.resolution
    y = ctx.constrain(jax.random.normal(k_y, (n, res, res, 3))) / res
    penalty, pl_mean = sg2_losses.path_length_penalty(
        lambda ws: plugin.synthesize(g_vars, ws, inputs, k_noise), ws, y, state.pl_mean,
        loss.pl_decay)
    return penalty * loss.pl_weight * loss.pl_every, (penalty, pl_mean)

  g_params, opt_g_state, pl_mean = state.g["params"], state.opt_g, state.pl_mean
  penalty = jnp.zeros((), jnp.float32)
  if path_length:
    grads, (penalty, pl_mean) = jax.grad(pl_loss_fn, has_aux=True)(g_params)
    g_params, opt_g_state = _adam_step(ctx.opt_g, g_params, opt_g_state, grads)
  new_state = state.replace(g={**state.g, "params": g_params}, opt_g=opt_g_state,
                            pl_mean=pl_mean)
  return new_state, {"pl_penalty": penalty, "pl_mean": pl_mean,
                     "pl_applied": float(path_length)}


def make_train_step(config: ml_collections.ConfigDict, plugin: StyleGAN2Plugin,
                    opt_g: optax.GradientTransformation, opt_d: optax.GradientTransformation,
                    phase: Phase, constrain: Callable[[Array], Array] = lambda x: x):
  """Returns ``train_step(state, batch) -> (state, metrics)`` (pure; jit it with shardings)
  for steps of ``phase``; a regulariser the phase leaves out is not even compiled.

  One step: :func:`discriminator_step` (D, then R1 if ``phase.r1``), :func:`generator_step`,
  :func:`path_length_step` (if ``phase.path_length``), then the EMA of G.
  ``constrain`` pins per-sample arrays drawn inside the step to the batch sharding. The step
  runs ``plugin.for_phase(phase)`` (SpatialGAN's lazy alignment weights its term by phase).
  ``batch["image"]``: (N, H, W, 3) float in [-1, 1], N = the global batch; conditional models
  also ``batch["labels"]`` (N, c_dim).
  """
  plugin = plugin.for_phase(phase)
  ctx = StepContext(config, plugin, opt_g, opt_d, constrain, augment_lib.pipe_from_config(config))

  def train_step(state: state_lib.GANState, batch: dict[str, Array]):
    labels = batch["labels"] if plugin.c_dim else None
    key = jax.random.fold_in(jax.random.key(config.seed), state.step)
    k_d, k_g, k_pl = jax.random.split(key, 3)
    k_aug_d, k_aug_g = jax.random.split(jax.random.fold_in(key, 3))
    state, d_metrics = discriminator_step(ctx, state, batch["image"], k_d, phase.r1, labels,
                                          k_aug_d)
    state, g_metrics = generator_step(ctx, state, k_g, labels, k_aug_g)
    state, pl_metrics = path_length_step(ctx, state, k_pl, phase.path_length, labels)
    beta = state_lib.ema_beta(config, state.step)
    signs = d_metrics.pop("sign_sum"), d_metrics.pop("sign_count")
    augment, aug_metrics = augment_lib.next_state(config, state.augment, *signs, state.step)
    state = state.replace(g_ema=state_lib.ema_update(state.g_ema, state.g, beta),
                          step=state.step + 1, augment=augment)
    metrics = {**d_metrics, **g_metrics, **pl_metrics, **aug_metrics, "ema_beta": beta}
    if ctx.pipe is None:       # r_t, the overfitting heuristic, is logged for every run
      del metrics["augment/p"]
    return state, jax.tree.map(lambda m: jnp.asarray(m, jnp.float32), metrics)

  return train_step


def init_state(config: ml_collections.ConfigDict, plugin: StyleGAN2Plugin,
               opt_g: optax.GradientTransformation, opt_d: optax.GradientTransformation,
               key: Array) -> state_lib.GANState:
  """Fresh state: G and D initialised from ``key`` (works under ``jax.eval_shape``)."""
  k_g, k_d = jax.random.split(key)
  g_vars = plugin.generator.init(k_g, *plugin.init_inputs(), **plugin.label_kwargs())
  res = config.model.resolution
  d_vars = plugin.discriminator.init(k_d, jnp.zeros((1, res, res, 3)), **plugin.label_kwargs())
  return state_lib.GANState(
      step=jnp.zeros((), jnp.int32), g=g_vars, g_ema=g_vars, d=d_vars,
      opt_g=opt_g.init(g_vars["params"]), opt_d=opt_d.init(d_vars["params"]),
      pl_mean=jnp.zeros((), jnp.float32), augment=augment_lib.init_state(config))
