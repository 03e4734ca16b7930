"""Training the latent regressor E against a frozen generator (Chai et al. 2021).

The generator is any family with a regression target (StyleGAN2, SSN, SpatialGAN:
``losses.regressor.regression_target``, named by its family record), which says what E
predicts and how G renders it. Batches are generated inside the step (z ~ N(0, I) and the
family's other inputs, x = G(z), random masks), so there is no data iterator; everything
else (mesh, checkpoints, logging, resume, preemption) is the GAN loop's
(:func:`jaxspatial.training.loop.train`). The checkpoint bundles the generator:
models ``{"e": {"params", "batch_stats"}, "g_ema": g_vars}`` with the config returned by
:func:`attach_generator`, so ``js.load(workdir)`` gives a ready regressor.
"""

from __future__ import annotations

import pathlib
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxspatial import families
from jaxspatial import checkpoint
from jaxspatial.errors import UserError
from jaxspatial.losses import regressor as regression
from jaxspatial.models import regressor as regressor_lib
from jaxspatial.training import loop
from jaxspatial.training import state as state_lib


@flax.struct.dataclass
class RegressorState:
  step: jax.Array
  e: Any          # {"params", "batch_stats"}
  opt: Any


class RegressorTrainer:
  """Same interface as :class:`loop.Trainer`; the frozen generator and LPIPS weights are
  replicated arguments of the jitted step, not constants baked into it."""

  uses_data = False

  def __init__(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None):
    config, g_vars = attach_generator(config)
    if config.batch_size % jax.device_count():
      raise UserError(f"batch_size {config.batch_size} is not divisible by the "
                      f"{jax.device_count()} devices")
    self.config = config
    self.mesh = mesh or loop.make_mesh(config)
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharding = NamedSharding(self.mesh, P("data"))
    o = config.optim
    self.optimizer = optax.adam(o.lr, b1=o.b1, b2=o.b2, eps=o.eps)
    self.generator = families.build_generator(config.model.generator)
    self.target = regression.regression_target(config.model.generator)
    self.regressor = regressor_lib.build_regressor(config.model)
    self.g_vars = jax.device_put(g_vars, self.replicated)
    lpips_params = regression.load_lpips_params(config.loss)
    self.lpips_params = (jax.device_put(lpips_params, self.replicated)
                         if lpips_params is not None else None)

    def init(key):
      e = regressor_lib.init_regressor(config.model, key)
      return RegressorState(step=jnp.zeros((), jnp.int32), e=e,
                            opt=self.optimizer.init(e["params"]))

    self.abstract_state = jax.eval_shape(init, jax.random.key(config.seed))
    self.state_sharding = jax.tree.map(lambda _: self.replicated, self.abstract_state)
    self._init = jax.jit(init, out_shardings=self.state_sharding)
    constrain = lambda a: jax.lax.with_sharding_constraint(a, self.batch_sharding)

    def step(state, g_vars, lpips_params):
      key = jax.random.fold_in(jax.random.key(config.seed), state.step)
      g_apply = regression.generator_fns(self.generator, g_vars, config.model.noise_mode, key,
                                         self.target)
      lpips_fn = (regression.make_lpips_fn(lpips_params, config.loss.lpips_net,
                                           config.loss.lpips_resolution)
                  if lpips_params is not None else None)
      grads, (metrics, batch_stats) = jax.grad(regression.regressor_loss_fn, has_aux=True)(
          state.e["params"], state.e["batch_stats"], g_apply, key, config, lpips_fn,
          constrain=constrain)
      updates, opt = self.optimizer.update(state_lib.finite_gradients(grads), state.opt,
                                           state.e["params"])
      params = optax.apply_updates(state.e["params"], updates)
      metrics["grad_norm/e"] = optax.tree.norm(grads)
      new = state.replace(step=state.step + 1, opt=opt,
                          e={"params": params, "batch_stats": batch_stats})
      return new, jax.tree.map(lambda m: jnp.asarray(m, jnp.float32), metrics)

    self._step = jax.jit(step, in_shardings=(self.state_sharding, self.replicated, self.replicated),
                         out_shardings=(self.state_sharding, self.replicated), donate_argnums=0)
    self._render_jit = jax.jit(self._render)
    self.state: RegressorState | None = None
    self.sample_cols = config.num_samples

  def initialize(self) -> None:
    self.state = self._init(jax.random.key(self.config.seed))

  def global_batch(self, local):
    raise TypeError("the regressor draws its own batches")

  def step(self, batch: None = None) -> dict[str, jax.Array]:
    self.state, metrics = self._step(self.state, self.g_vars, self.lpips_params)
    return metrics

  def save(self, mngr, data_state: Any = None, force: bool = False) -> bool:
    s = self.state
    args = checkpoint.save_args(models={"e": s.e, "g_ema": self.g_vars},
                                train={"step": s.step, "opt": s.opt}, config=self.config)
    return mngr.save(int(jax.device_get(s.step)), args=args, force=force)

  def restore(self, mngr, step: int) -> None:
    a, sh = self.abstract_state, self.state_sharding
    target = lambda tree, shard: jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shard)
    g_abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                                             sharding=self.replicated),
                              self.g_vars)
    out = mngr.restore(step, args=checkpoint.restore_args(
        models={"e": target(a.e, sh.e), "g_ema": g_abstract},
        train=target({"step": a.step, "opt": a.opt}, {"step": sh.step, "opt": sh.opt})))
    self.state = RegressorState(step=out.train["step"], e=out.models["e"], opt=out.train["opt"])
    return None

  def sample_inputs(self) -> dict[str, jax.Array]:
    n, res = self.config.num_samples, self.config.model.resolution
    k_z, k_m = jax.random.split(jax.random.fold_in(jax.random.key(self.config.seed), 2**31 - 1))
    mask = (regression.sample_masks(k_m, n, res) if self.config.model.use_mask
            else jnp.ones((n, res, res, 1)))
    return {"latents": self.target.draw(self.generator, k_z, n), "mask": mask}

  def _render(self, e, g_vars, inputs):
    g_apply = regression.generator_fns(self.generator, g_vars, "const", target=self.target)
    x, _ = g_apply.generate(inputs["latents"])
    code = self.regressor.apply(e, x * inputs["mask"], inputs["mask"], train=False)
    return jnp.concatenate([x, x * inputs["mask"], g_apply.synthesize(code)])

  def samples(self, inputs: dict[str, jax.Array]) -> np.ndarray:
    """Rows: targets G(z), hints (unknown pixels black), reconstructions G(E(x ⊙ m, m))."""
    return np.asarray(jax.device_get(self._render_jit(self.state.e, self.g_vars, inputs)))


# --------------------------------------------------------------------------- training set-up


def load_generator(directory: str | pathlib.Path) -> tuple[ml_collections.ConfigDict, Any]:
  """(generator ``model`` config, ``g_ema`` variables) of a generator checkpoint directory
  (from ``train`` or ``convert_torch``) of a family the regressor inverts; one-line
  :class:`UserError` if it is missing or of another kind."""
  kinds = families.kinds_with(lambda f: f.regression is not None)
  if not directory:
    raise UserError("the regressor needs a frozen generator: --config.generator=DIR (a "
                    f"{', '.join(kinds)} checkpoint from 'python -m jaxspatial.train' or "
                    "'jaxspatial.convert_torch')")
  config = checkpoint.read_config(directory, kind=kinds,
                                  name=f"--config.generator={directory}", user="the regressor")
  variables = checkpoint.restore_models(directory)
  g_vars = variables.get("g_ema", variables.get("g"))
  if g_vars is None:
    raise UserError(f"{directory} holds no generator ('g_ema' or 'g')")
  return config.model, g_vars


def attach_generator(config: ml_collections.ConfigDict
                     ) -> tuple[ml_collections.ConfigDict, Any]:
  """Reads ``config.generator`` (DIR) and returns (a copy of the config whose ``model``
  section is the full regressor section for that generator, the generator's variables).

  The regressor knobs are taken from the preset's ``model`` (depth, width, input_size 0 =
  automatic, use_mask, noise_mode, compute_dtype), what it predicts from the generator's
  family (``losses.regressor.layout_of``); ``data.resolution`` is set to the generator's.
  Save the returned config with the checkpoint and the models item ``{"e": e_vars, "g_ema":
  g_vars}``: ``js.load`` then needs nothing else.
  """
  g_model, g_vars = load_generator(config.generator)
  m = config.model
  out = ml_collections.ConfigDict(config.to_dict())
  out.model = regressor_lib.regressor_model_config(
      g_model, depth=int(m.depth), width=int(m.width), input_size=int(m.input_size) or None,
      use_mask=bool(m.use_mask), noise_mode=str(m.noise_mode),
      compute_dtype=str(m.compute_dtype), layout=regression.layout_of(g_model))
  if "data" in out:
    out.data.resolution = int(g_model.resolution)
  return out, g_vars


def completed_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The config as training saves it: :func:`attach_generator`'s, without the variables."""
  return attach_generator(config)[0]
