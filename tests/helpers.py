"""Helpers shared by test modules, so that no test module imports another: the repository
root, ``rbg`` PRNG keys for a block, a ``configs/<name>.py`` preset, batches of the
configured dataset, a few trainer steps with the history of G's parameters, random variables
of a module's shapes, and a class no safe unpickler accepts.

Importing this module imports neither jax nor jaxspatial (a subprocess unpickles
:class:`Opaque` through it)."""

import contextlib
import copy
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@contextlib.contextmanager
def rbg_keys():
  """jax's ``rbg`` PRNG inside the block (threefry's init and sampling take far longer to
  compile on the 2-core CI), the previous one restored after it."""
  import jax
  impl = jax.config.jax_default_prng_impl
  jax.config.update("jax_default_prng_impl", "rbg")
  try:
    yield
  finally:
    jax.config.update("jax_default_prng_impl", impl)


def load_config(preset="tiny", name="stylegan2"):
  """``get_config(preset)`` of ``configs/<name>.py`` (``config_lib.load``)."""
  from jaxspatial.training import config_lib
  return config_lib.load(name, preset)


def batches(config, n):
  """The first ``n`` global batches of ``config.data`` (one process)."""
  from jaxspatial.data import pipeline
  it = pipeline.make_iterator(config.data, global_batch_size=config.batch_size,
                              seed=config.seed, process_index=0, process_count=1)
  return [next(it) for _ in range(n)]


def run_steps(config, devices, data):
  """A fresh ``loop.Trainer`` on ``devices`` devices stepped once per batch of ``data``:
  (trainer, per-step metrics); ``trainer.g_params_history`` holds G after 0, 1, ... steps."""
  import jax
  from jaxspatial.training import loop
  config = copy.deepcopy(config)
  config.mesh.data = devices
  trainer = loop.Trainer(config)
  trainer.initialize()
  history = []
  g_params = [jax.device_get(trainer.state.g["params"])]   # G after 0, 1, ... steps
  for b in data:
    m = trainer.step(trainer.global_batch(b))
    history.append(jax.device_get(m))
    g_params.append(jax.device_get(trainer.state.g["params"]))
  trainer.g_params_history = g_params
  return trainer, history


def np_init(module, seed, *args, **kw):
  """Variables shaped like ``module.init(rngs, *args, **kw)``'s, filled with N(0, 1) numpy
  draws (compiling a real init costs tens of seconds on a shared 2-core machine; for tests
  that need none of its particular values)."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  shapes = jax.eval_shape(lambda: module.init({"params": jax.random.key(0),
                                               "noise": jax.random.key(0)}, *args, **kw))
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: jnp.asarray(rng.normal(size=s.shape).astype(s.dtype)), shapes)


class Opaque:
  """A class torch's ``weights_only`` unpickler refuses (a pickle holding one needs
  ``--trust-pickle``); a process unpickling it needs ``tests/`` on its path."""
