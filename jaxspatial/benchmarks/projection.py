"""``python -m jaxspatial.bench projection``: seconds per projection step beside one generator
forward + backward of the same model, timed in the same run.

Models are random StyleGAN2s (the weights do not change the cost): the 32 px demo architecture
and a thin 256 px one (channel_base 2048, channel_max 64). The baseline is ``jax.grad`` of the
summed synthesis output with respect to W and the noise maps (what a projection step
differentiates), the variables passed as arguments as the step takes them; a step adds the
loss, the noise regulariser, Adam and the noise renormalisation. ``mse`` needs no extra
network; ``critic`` adds the discriminator's features (a forward and backward through D), so it
is compared with G + D forward + backward as well. One image per step; the best steady-state
call of each compiled program, the four programs of a size timed in turn (a few calls of one,
then of the other, misread the ratio by up to 0.3); and the FLOPs per call from
XLA's cost analysis (machine-independent: how much arithmetic the step adds to its baseline,
whatever the timing noise).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxspatial import families
from jaxspatial import models
from jaxspatial.api.model import GeneratorModel
from jaxspatial.benchmarks import compile_with_flops, flop_rate, time_interleaved
from jaxspatial.edit import projection
from jaxspatial.models import stylegan2 as sg2

SIZES = {"32 px (demo)": dict(resolution=32, z_dim=64, w_dim=64, n_mlp=2, channel_base=1024,
                              channel_max=32),
         "256 px (thin)": dict(resolution=256, z_dim=64, w_dim=64, n_mlp=2, channel_base=2048,
                               channel_max=64)}


def _model(spec: dict) -> GeneratorModel:
  cfg = models.stylegan2_model_config(spec["resolution"], **{k: v for k, v in spec.items()
                                                             if k != "resolution"})
  key = jax.random.key(0)
  g, d = families.build_generator(cfg), families.build_discriminator(cfg)
  r = spec["resolution"]
  variables = {"g_ema": jax.jit(g.init)(key, jnp.zeros((1, cfg.z_dim))),
               "d": jax.jit(d.init)(key, jnp.zeros((1, r, r, 3)))}
  return GeneratorModel(ml_collections.ConfigDict({"model": cfg}), variables)


def _forward_backward(model: GeneratorModel, with_d: bool):
  """(jitted grad, its arguments): the baseline, with the model's variables as arguments as
  the projection step takes them (closed-over constants compile to another program)."""
  g, d = model.generator, model.discriminator
  ws = jnp.zeros((1, model.num_ws, model.w_dim))
  noise = [jnp.zeros((1, sg2.noise_resolution(i), sg2.noise_resolution(i), 1))
           for i in range(sg2.num_noises(model.resolution))]

  def total(g_vars, d_vars, ws, noise):
    img = g.apply(g_vars, ws, "const", noise, method=type(g).synthesize)
    if with_d:
      _, feats = d.apply(d_vars, img, return_features=True)
      return sum(jnp.sum(f) for f in feats.values())
    return jnp.sum(img)

  return jax.jit(jax.grad(total, argnums=(2, 3))), (model.g_vars, model.d_vars, ws, noise)


def _projection_step(model: GeneratorModel, loss: str):
  """(jitted projection step, its arguments) for one image, 10 steps into 100."""
  cfg = projection.ProjectionConfig(loss=loss, w_avg_samples=1000)
  c = projection.compiled(model, cfg)
  x = jnp.zeros((1, model.resolution, model.resolution, 3))
  params = {"latent": c.fam.start(model.g_vars, jnp.asarray(c.w_avg), 1),
            "noise": [jnp.asarray(np.random.default_rng(i).standard_normal((1, r, r, 1)),
                                  jnp.float32)
                      for i, r in enumerate(sg2.noise_resolution(i)
                                            for i in range(sg2.num_noises(model.resolution)))]}
  args = (params, c.adam.init(params), jnp.int32(10), jnp.int32(100), jax.random.key(0),
          model.g_vars, c.loss_params, c.prepare_target(c.loss_params, x), None,
          jnp.float32(c.w_std))
  return jax.jit(c.step.__wrapped__), args


def bench_projection(rounds: int = 60) -> list[dict]:
  """Per size: the step of each loss and its baseline, compiled, then timed interleaved
  (:func:`~jaxspatial.benchmarks.time_interleaved`, ``rounds`` rounds of 5 calls)."""
  rows = []
  for name, spec in SIZES.items():
    model = _model(spec)
    programs = {"G": _forward_backward(model, False), "G+D": _forward_backward(model, True),
                "mse": _projection_step(model, "mse"), "critic": _projection_step(model, "critic")}
    calls, flops = {}, {}
    for key, (jitted, args) in programs.items():
      executable, _, flops[key] = compile_with_flops(jitted, *args)
      calls[key] = (executable, args)
    best = time_interleaved(calls, rounds=rounds)
    for loss, base in (("mse", "G"), ("critic", "G+D")):
      rows.append({"model": name, "loss": loss, "step s": f"{best[loss]:.4f}",
                   "baseline": f"{base} fwd+bwd", "baseline s": f"{best[base]:.4f}",
                   "step / baseline": f"{best[loss] / best[base]:.2f}",
                   "GFLOP step / baseline": f"{flops[loss] / 1e9:.3f} / {flops[base] / 1e9:.3f}",
                   "FLOP ratio": f"{flops[loss] / flops[base]:.3f}",
                   **flop_rate(flops[loss], best[loss], prefix="step "),
                   **flop_rate(flops[base], best[base], prefix="baseline ")})
  return rows
