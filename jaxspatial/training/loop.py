"""The GAN training loop: mesh, sharded state, data, checkpoints, logging, samples.

``train(config, workdir)`` is what ``python -m jaxspatial.train`` runs. Its parts are
importable on their own (tests drive ``Trainer`` step by step).
"""

from __future__ import annotations

import json
import pathlib
import signal
import sys
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxspatial import families, imageio
from jaxspatial import checkpoint
from jaxspatial.errors import UserError
from jaxspatial.training import augment as augment_lib
from jaxspatial.training import compile_cache, gan_step
from jaxspatial.training import logging as log_lib
from jaxspatial.training import state as state_lib
from jaxspatial.training import workdir as workdir_lib

def make_plugin(config: ml_collections.ConfigDict) -> gan_step.StyleGAN2Plugin:
  """The GAN-step plug-in of ``config.model.kind`` (``families.Family.training``) with the
  family's generator and discriminator."""
  family = families.get(config.model.kind)
  if family.training is None:
    raise UserError(f"model kind {family.kind!r} is not trained as a GAN")
  return families.resolve(family.training)(config, family.build_generator(config.model),
                                           family.build_discriminator(config.model))


def make_trainer(config: ml_collections.ConfigDict):
  """The trainer of ``config.model.kind`` (``families.Family.trainer``), after the family's
  config checks (``families.Family.validate``)."""
  family = families.get(config.model.kind)
  if family.validate is not None:
    families.resolve(family.validate)(config)
  return families.resolve(family.trainer)(config)


def make_mesh(config: ml_collections.ConfigDict) -> jax.sharding.Mesh:
  """A 1-D ``data`` mesh over ``config.mesh.data`` devices (-1: all of them).

  Axes are ``Auto``: parameters are replicated and the batch is sharded by explicit
  ``NamedSharding``s on the jitted step; XLA inserts the gradient all-reduces.
  """
  n = config.mesh.data if config.mesh.data > 0 else jax.device_count()
  return jax.make_mesh((n,), ("data",), devices=jax.devices()[:n],
                       axis_types=(jax.sharding.AxisType.Auto,))


class Trainer:
  """Holds the jitted step, its shardings and the state; one ``step(batch)`` per iteration."""

  uses_data = True
  sample_cols: int | None = None     # sample-grid columns (None: square)

  def __init__(self, config: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None):
    self.config = config
    self.mesh = mesh or make_mesh(config)
    self.plugin = make_plugin(config)
    self.opt_g, self.opt_d = state_lib.make_optimizers(config)
    self.replicated = NamedSharding(self.mesh, P())
    self.batch_sharding = NamedSharding(self.mesh, P("data"))
    init = lambda key: gan_step.init_state(config, self.plugin, self.opt_g, self.opt_d, key)
    self.abstract_state = jax.eval_shape(init, jax.random.key(config.seed))
    self.state_sharding = jax.tree.map(lambda _: self.replicated, self.abstract_state)
    self._init = jax.jit(init, out_shardings=self.state_sharding)
    self._steps: dict[gan_step.Phase, Any] = {}   # one jitted program per phase, on first use
    self._next_step = 0          # host copy of state.step: picks the phase without a device sync
    self._render = jax.jit(self.plugin.render)
    self.state: state_lib.GANState | None = None

  def initialize(self) -> None:
    """Fresh state from ``seed``; with ``config.init_from`` G, G_ema and D start from that
    checkpoint (the family decides how: same-kind weights, or SSN's StyleGAN2 transfer)."""
    self.state = self._init(jax.random.key(self.config.seed))
    self._next_step = 0
    init_from = self.config.init_from
    if not init_from:
      return
    _check_same_function(init_from, self.config.model)
    models = self.plugin.init_models(init_from)
    updates = {}
    for name in ("g", "g_ema", "d"):
      if name not in models:
        continue
      current = getattr(self.state, name)
      if jax.tree.structure(models[name]) != jax.tree.structure(current) or any(
          a.shape != b.shape for a, b in zip(jax.tree.leaves(models[name]),
                                             jax.tree.leaves(current))):
        raise UserError(f"init_from={init_from}: its {name} does not match config.model"
                        f"{_model_differences(init_from, self.config.model)}")
      updates[name] = jax.device_put(jax.tree.map(lambda a, b: jnp.asarray(a, b.dtype),
                                                  models[name], current), self.replicated)
    self.state = self.state.replace(**updates)

  def global_batch(self, local: dict[str, np.ndarray]) -> dict[str, jax.Array]:
    """Process-local numpy batch -> global arrays sharded over ``data`` (the images, and
    the labels a conditional model trains on)."""
    keys = ("image", "labels") if self.plugin.c_dim else ("image",)
    return {k: jax.make_array_from_process_local_data(self.batch_sharding, local[k])
            for k in keys}

  def compiled_step(self, phase: gan_step.Phase):
    """The jitted step for ``phase`` (built and cached on first use): state donated, explicit
    in/out shardings."""
    if phase not in self._steps:
      step = gan_step.make_train_step(
          self.config, self.plugin, self.opt_g, self.opt_d, phase,
          constrain=lambda x: jax.lax.with_sharding_constraint(x, self.batch_sharding))
      self._steps[phase] = jax.jit(step, in_shardings=(self.state_sharding, self.batch_sharding),
                                   out_shardings=(self.state_sharding, self.replicated),
                                   donate_argnums=0)
    return self._steps[phase]

  def step(self, batch: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """One training iteration; its lazy regularisers follow the step number."""
    phase = gan_step.phase_at(self.config, self._next_step)
    self.state, metrics = self.compiled_step(phase)(self.state, batch)
    self._next_step += 1
    return metrics

  # ---------------------------------------------------------------- checkpoints

  def save(self, mngr, data_state: Any = None, force: bool = False) -> bool:
    s = self.state
    items = dict(models={"g": s.g, "g_ema": s.g_ema, "d": s.d},
                 train={"step": s.step, "opt_g": s.opt_g, "opt_d": s.opt_d,
                        "pl_mean": s.pl_mean, "augment": s.augment},
                 config=self.config)
    if data_state is not None:
      items["data"] = data_state
    return mngr.save(int(jax.device_get(s.step)), args=checkpoint.save_args(**items), force=force)

  def restore(self, mngr, step: int) -> Any:
    """Restores state (with this mesh's shardings) and returns the saved data state."""
    a, sh = self.abstract_state, self.state_sharding
    target = lambda tree, shard: jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shard)
    models = target({"g": a.g, "g_ema": a.g_ema, "d": a.d}, {"g": sh.g, "g_ema": sh.g_ema,
                                                             "d": sh.d})
    saved = _saved_train_paths(mngr, step)
    opt = {"opt_g": a.opt_g, "opt_d": a.opt_d}
    per_leaf = any(p[:3] == ("opt_g", "0", "mu") and len(p) > 3 for p in saved)
    if per_leaf:     # saved before the flat optimiser layout: restored as saved, converted below
      opt_g, opt_d = state_lib.make_optimizers(self.config, per_leaf=True)
      opt = {"opt_g": jax.eval_shape(opt_g.init, a.g["params"]),
             "opt_d": jax.eval_shape(opt_d.init, a.d["params"])}
    train = target({"step": a.step, **opt, "pl_mean": a.pl_mean, "augment": a.augment},
                   {"step": sh.step, **jax.tree.map(lambda _: self.replicated, opt),
                    "pl_mean": sh.pl_mean, "augment": sh.augment})
    if not any(p[0] == "augment" for p in saved):     # saved before ADA: it starts afresh
      del train["augment"]
    args = dict(models=models, train=train)
    if "data" in checkpoint.saved_items(mngr, step):
      args["data"] = None
    out = mngr.restore(step, args=checkpoint.restore_args(**args))
    m, t = out.models, out.train
    augment = t.get("augment") or jax.device_put(augment_lib.init_state(self.config), sh.augment)
    opt_g, opt_d = t["opt_g"], t["opt_d"]
    if per_leaf:
      flat = jax.jit(state_lib.flat_optimizer_state, out_shardings=self.replicated)
      opt_g, opt_d = flat(opt_g), flat(opt_d)
    self.state = state_lib.GANState(step=t["step"], g=m["g"], g_ema=m["g_ema"], d=m["d"],
                                    opt_g=opt_g, opt_d=opt_d, pl_mean=t["pl_mean"],
                                    augment=augment)
    self._next_step = int(jax.device_get(t["step"]))
    return out.get("data") if "data" in args else None

  # ---------------------------------------------------------------- samples

  def sample_inputs(self) -> dict[str, jax.Array]:
    key = jax.random.fold_in(jax.random.key(self.config.seed), 2**31 - 1)
    return self.plugin.sample_inputs(key, self.config.num_samples)

  def samples(self, inputs: dict[str, jax.Array]) -> np.ndarray:
    return np.asarray(jax.device_get(self._render(self.state.g_ema, inputs)))


def _saved_train_paths(mngr, step: int) -> list[tuple[str, ...]]:
  """The key paths of checkpoint ``step``'s ``train`` item, read from its tree metadata
  (Orbax's own reader warns on every call): they tell what was saved before ADA (no
  ``augment``) and before the flat optimiser layout (``opt_g/0/mu/<parameter path>``)."""
  meta = mngr.directory / str(step) / "train" / "_METADATA"
  if not meta.exists():
    return []
  tree = json.loads(meta.read_text()).get("tree_metadata", {})
  return [tuple(k["key"] for k in v["key_metadata"]) for v in tree.values()]


class _Preemption:
  """Turns SIGTERM into a flag the loop checks each step (checkpoint, then exit)."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    def handler(signum, frame):
      self.requested = True
    try:
      self._previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:      # not the main thread (e.g. inside some test runners)
      self._previous = None
    return self

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def train(config: ml_collections.ConfigDict, workdir: str | pathlib.Path,
          trainer: Trainer | None = None) -> pathlib.Path:
  """Trains (or resumes) in ``workdir`` until ``config.total_steps``; returns the workdir.

  ``trainer`` defaults to the family's (:func:`make_trainer`): the GAN :class:`Trainer`, or
  anything with the same methods (the latent regressor's draws its own batches:
  ``uses_data = False``). The run holds the workdir's lock, resumes from its newest intact
  checkpoint and reports a full disk in one line (:mod:`jaxspatial.training.workdir`).
  """
  compile_cache.enable(config.compile_cache_dir)
  # Progress opens first: building the trainer, restoring and the first compilation can take
  # minutes on a loaded machine, and its lines (output redirected) cover them too.
  with log_lib.Progress(config.total_steps, config.batch_size) as progress:
    if trainer is None:
      trainer = make_trainer(config)
    workdir = pathlib.Path(workdir).absolute()
    with workdir_lib.Lock(workdir), workdir_lib.full_disk_is_a_user_error(workdir):
      return _train(trainer, workdir, progress)


def _warn_of_corrupt_images(count: int, reported: int, data: ml_collections.ConfigDict) -> int:
  """One warning line when the count of unreadable images first becomes non-zero."""
  if count and not reported and jax.process_index() == 0:
    print(f"warning: {count} unreadable image file(s) in {data.get('path', '')} skipped and "
          "replaced by the next readable ones; metrics.jsonl counts them (corrupt_images)",
          file=sys.stderr)
  return count


def _train(trainer: Trainer, workdir: pathlib.Path, progress: log_lib.Progress
           ) -> pathlib.Path:
  from jaxspatial.data import pipeline

  config = trainer.config
  is_main = jax.process_index() == 0
  data_iter = (pipeline.make_iterator(config.data, global_batch_size=config.batch_size,
                                      seed=config.seed) if trainer.uses_data else None)
  mngr, latest, data_state = workdir_lib.restore_newest_intact(
      trainer, workdir, lambda: checkpoint.manager(workdir, max_to_keep=config.keep_checkpoints))
  if latest is not None:
    if data_state is not None and data_iter is not None:
      data_iter.set_state(data_state)
    if latest >= config.total_steps:
      progress.start_at(latest)
      mngr.close()
      if is_main:
        print(f"{workdir} has finished: its checkpoint is at step {latest} and total_steps is "
              f"{config.total_steps}, so there is nothing to do (a larger "
              "--config.total_steps continues it)")
      return workdir
    if is_main:
      print(f"resuming from step {latest} in {workdir}")
  else:
    trainer.initialize()
  start = int(jax.device_get(trainer.state.step))
  writer = log_lib.MetricWriter(workdir)
  progress.start_at(start)
  fixed_inputs = trainer.sample_inputs()
  samples_dir = workdir / "samples"
  t0 = time.perf_counter()
  step = start
  corrupt = 0
  with _Preemption() as preemption:
    for step in range(start + 1, config.total_steps + 1):
      metrics = trainer.step(trainer.global_batch(next(data_iter)) if data_iter else None)
      if config.log_every and step % config.log_every == 0:
        metrics = jax.device_get(metrics)
        progress.update(step, metrics)
        extra = {}
        if data_iter:
          corrupt = _warn_of_corrupt_images(pipeline.corrupt_count(data_iter), corrupt, config.data)
          extra["corrupt_images"] = float(corrupt)
        writer.write(step, metrics, kimg=step * config.batch_size / 1000,
                     images_per_sec=progress.images_per_sec, **extra)
      if config.sample_every and step % config.sample_every == 0:
        images = trainer.samples(fixed_inputs)     # every process takes part in the jit
        if is_main:
          imageio.save_grid(samples_dir / f"step_{step:06d}.png", images,
                            cols=trainer.sample_cols, upscale_to=64)
      stop = preemption.requested or mngr.reached_preemption(step)
      if stop or (config.checkpoint_every and step % config.checkpoint_every == 0):
        trainer.save(mngr, data_iter.get_state() if data_iter else None, force=stop)
      if stop:
        if is_main:
          print(f"preempted at step {step}: checkpoint saved in {workdir}")
        break
  if step == config.total_steps and mngr.latest_step() != step:
    trainer.save(mngr, data_iter.get_state() if data_iter else None, force=True)
  mngr.wait_until_finished()
  mngr.close()
  progress.close()
  writer.close()
  finished = step == config.total_steps and config.total_steps > start
  if finished:
    images = trainer.samples(fixed_inputs)
  if finished and is_main:
    imageio.save_grid(samples_dir / f"step_{step:06d}.png", images,
                      cols=trainer.sample_cols, upscale_to=64)
    elapsed = time.perf_counter() - t0
    print(f"trained steps {start}..{step} in {elapsed:.0f}s; checkpoints: "
          f"{checkpoint.checkpoint_root(workdir)}, samples: {samples_dir}, metrics: "
          f"{writer.path} (open with js.load({str(workdir)!r}))")
  return workdir


# ``model.*`` keys that change what a network computes but not the shapes of its weights: a run
# started from a checkpoint built with other values would load it and silently train another
# network (a stylegan2-ada pickle converts with its conv_clamp, 256 for NVIDIA's; presets have none).
_FUNCTION_KEYS = ("conv_clamp", "lr_mlp")


def _check_same_function(directory: str, model: ml_collections.ConfigDict) -> None:
  """UserError when ``config.init_from``'s networks were built with other
  :data:`_FUNCTION_KEYS` values than ``model``, naming the flags that match them."""
  saved = checkpoint.read_config(directory).model
  diff = [k for k in _FUNCTION_KEYS if k in saved and k in model and saved[k] != model[k]]
  if diff:
    held = ", ".join(f"{k}={saved[k]}" for k in diff)
    has = ", ".join(f"{k}={model[k]}" for k in diff)
    fix = " ".join(f"--config.model.{k}={saved[k]}" if saved[k] is not None
                   else f"no --config.model.{k}" for k in diff)
    raise UserError(f"init_from={directory} was built with {held}, config.model has {has}: its "
                    f"weights would load but compute another network; give {fix}")


def _model_differences(directory: str, model: ml_collections.ConfigDict) -> str:
  """``' (checkpoint has channel_max=32, config 64; ...)'``: the ``model.*`` values a checkpoint
  was trained with that differ from ``model``, to say which flags reproduce it."""
  saved = checkpoint.read_config(directory).model
  diff = [f"{k}={saved[k]}, config {model[k]}" for k in sorted(model.keys())
          if k in saved and saved[k] != model[k]]
  return f" (checkpoint has {'; '.join(diff)})" if diff else ""
