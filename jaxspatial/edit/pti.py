"""Pivotal tuning (Roich, Mokady, Bermano, Cohen-Or 2021): fine-tune a copy of G around a
projection so that the pivot renders the target, while the rest of the latent space keeps
its images.

With the pivot ``w_p`` (a :class:`~jaxspatial.edit.projection.Projection`: its W+, noise maps
and, for SpatialGAN, heatmaps) fixed and the synthesis weights ``θ`` trained from the original
``θ*``:

    L_pt = λ_mse ||G(w_p; θ) - x||² + λ_p D(G(w_p; θ), x)                        (PTI eq. 1)
    w_r  = w_p + α σ_w (w_z - w_p) / ||w_z - w_p||,   w_z = mapping(z), z ~ N(0, I)
    L_R  = λ^R_mse ||G(w_r; θ) - G(w_r; θ*)||² + λ^R_p D(G(w_r; θ), G(w_r; θ*))   (PTI eq. 3)
    L    = L_pt + λ_R L_R

with ``D`` the projection's distance (LPIPS in the paper; ``critic`` or ``mse`` here when no
LPIPS weights exist). The paper's values: Adam lr 3e-4, 350 steps, λ_mse = λ_p = 1,
λ^R_mse = λ^R_p = 0.1, λ_R = 1, one ``w_z`` per step. PTI's ``α = 30`` is an absolute distance
in FFHQ's W; here the radius is ``α σ_w`` with ``σ_w`` the projector's W spread, so that it
means the same on any generator (``locality_alpha = 1``: one typical W distance). The
mapping network is not tuned (the pivot is already in W, and ``w_avg``/truncation stay valid).
A batch of projections tunes one G for all of them; tune one image for the paper's setting.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxspatial import checkpoint
from jaxspatial.edit import projection as proj_lib
from jaxspatial.errors import UserError


@dataclasses.dataclass(frozen=True)
class PTIConfig:
  steps: int = 350
  lr: float = 3e-4
  mse_weight: float = 1.0
  perceptual_weight: float = 1.0
  locality_weight: float = 1.0
  locality_mse: float = 0.1
  locality_perceptual: float = 0.1
  locality_alpha: float = 1.0       # x sigma_w (see the module docstring)
  loss: str = "auto"                # the perceptual distance D (auto: projection.resolve_loss)
  seed: int = 0


@dataclasses.dataclass
class PTIResult:
  """``g_vars`` the tuned generator's variables; ``image`` the pivot rendered by it;
  ``loss_before``/``loss_after`` ``L_pt`` per image with the original and the tuned weights."""
  g_vars: dict
  image: np.ndarray
  loss_before: np.ndarray
  loss_after: np.ndarray
  psnr: np.ndarray
  seconds: float


def locality_latents(ws_p: jax.Array, ws_z: jax.Array, radius: jax.Array) -> jax.Array:
  """``w_r = w_p + radius (w_z - w_p) / ||w_z - w_p||`` per image (the norm over all of an
  image's W+)."""
  d = ws_z - ws_p
  norm = jnp.sqrt(jnp.sum(jnp.square(d), axis=tuple(range(1, d.ndim)), keepdims=True))
  return ws_p + radius * d / jnp.maximum(norm, 1e-8)


def _split(g_vars: dict) -> tuple[dict, dict]:
  """(tuned params: everything but the mapping network, the rest)."""
  params = g_vars["params"]
  tuned = {k: v for k, v in params.items() if k != "mapping"}
  return tuned, {**g_vars, "params": {k: v for k, v in params.items() if k == "mapping"}}


def _merge(tuned: dict, rest: dict) -> dict:
  return {**rest, "params": {**rest["params"], **tuned}}


def _make_step(model, cfg: PTIConfig, c, optimizer):
  fam, distance = c.fam, c.distance_fn
  prepare = c.prepare

  def render(v, ws, base_h, noise):
    return fam.render(v, ws, base_h, noise)

  def pt_loss(v, lp, x, target, ws, heatmaps, noise):
    img = render(v, ws, heatmaps, noise)
    mse = jnp.mean(jnp.square(img - x), axis=(1, 2, 3))
    return cfg.mse_weight * mse + cfg.perceptual_weight * distance(lp, img, target)

  def loss_fn(tuned, rest, original, lp, x, target, ws, heatmaps, noise, key, radius):
    v = _merge(tuned, rest)
    loss = pt_loss(v, lp, x, target, ws, heatmaps, noise)
    if cfg.locality_weight:
      ws_r = locality_latents(ws, fam.sample_ws(original, key, ws.shape[0]), radius)
      x_r0 = jax.lax.stop_gradient(render(original, ws_r, heatmaps, noise))
      x_r = render(v, ws_r, heatmaps, noise)
      reg = (cfg.locality_mse * jnp.mean(jnp.square(x_r - x_r0), axis=(1, 2, 3))
             + cfg.locality_perceptual * distance(lp, x_r, prepare(lp, x_r0)))
      loss = loss + cfg.locality_weight * reg
    return jnp.sum(loss)

  def step(tuned, opt_state, i, rest, original, lp, x, target, ws, heatmaps, noise, key, radius):
    grads = jax.grad(loss_fn)(tuned, rest, original, lp, x, target, ws, heatmaps, noise,
                              jax.random.fold_in(key, i), radius)
    updates, opt_state = optimizer.update(grads, opt_state, tuned)
    return optax.apply_updates(tuned, updates), opt_state

  return model.jit(step), model.jit(pt_loss), model.jit(render)


def pivotal_tuning(model, projection: proj_lib.Projection, config: PTIConfig = PTIConfig(),
                   callback=None) -> PTIResult:
  """Tunes a copy of ``model``'s generator around ``projection`` (module docstring)."""
  if projection.target is None:
    raise UserError("pivotal tuning needs the projection's target image (project first)")
  if config.steps < 0 or not config.lr > 0:
    raise UserError("PTI steps must be >= 0 and its lr positive")
  started = time.perf_counter()
  pcfg = proj_lib.ProjectionConfig(space=projection.space, loss=config.loss)
  c = proj_lib.compiled(model, pcfg)
  optimizer = optax.adam(config.lr)
  key_ = ("pti", dataclasses.replace(config, steps=0, seed=0), pcfg)
  step, pt_loss, render = model.cached(key_, lambda: _make_step(model, config, c, optimizer))
  original = model.g_vars
  tuned, rest = _split(original)
  x = jnp.asarray(projection.target)
  target = c.prepare_target(c.loss_params, x)
  ws = jnp.asarray(projection.ws)
  heatmaps = None if projection.heatmaps is None else jax.tree.map(jnp.asarray, projection.heatmaps)
  noise = [jnp.asarray(m) for m in projection.noise]
  radius = jnp.float32(config.locality_alpha * c.w_std)
  key = jax.random.key(config.seed)
  before = np.asarray(pt_loss(original, c.loss_params, x, target, ws, heatmaps, noise))
  opt_state = optimizer.init(tuned)
  for i in range(config.steps):
    tuned, opt_state = step(tuned, opt_state, jnp.int32(i), rest, original, c.loss_params, x,
                            target, ws, heatmaps, noise, key, radius)
    if callback is not None:
      callback(i)
  g_vars = _merge(tuned, rest)
  after = np.asarray(pt_loss(g_vars, c.loss_params, x, target, ws, heatmaps, noise))
  image = np.asarray(render(g_vars, ws, heatmaps, noise))
  return PTIResult(g_vars=jax.tree.map(np.asarray, g_vars), image=image, loss_before=before,
                   loss_after=after, psnr=proj_lib.psnr(image, projection.target),
                   seconds=time.perf_counter() - started)


def save_tuned(model, g_vars: dict, directory: str | pathlib.Path) -> pathlib.Path:
  """Writes the tuned generator (+ the model's discriminator) as a model directory that
  ``js.load`` reads."""
  models = {"g_ema": g_vars}
  if getattr(model, "d_vars", None) is not None:
    models["d"] = model.d_vars
  return checkpoint.save_model_dir(directory, models, model.config, step=model.step or 0)
