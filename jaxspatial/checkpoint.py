"""The on-disk model directory: an Orbax ``CheckpointManager`` tree.

Layout (written by ``train`` and by ``convert_torch`` alike, so ``js.load`` reads both)::

    DIR/checkpoints/<step>/
      models/   PyTree {"g": vars, "g_ema": vars, "d": vars} (any subset); vars =
                {"params": ..., "buffers": ...} as Flax returns them
      config/   JSON: the ml_collections config the run was built from
      train/    (training only) PyTree {"step", "opt_g", "opt_d", "pl_mean", "augment"}
      data/     (training only) JSON: the data iterator state

``train``'s optimiser states are Adam over one vector per network (``mu``/``nu`` at
``opt_g/0/mu``: the parameters raveled in tree order; ``training.state.make_optimizers``).
Checkpoints written before issue 37 hold one moment array per parameter array
(``opt_g/0/mu/<parameter path>``) and before ADA no ``augment``; the GAN ``Trainer.restore``
tells them apart by the saved tree's paths and converts them, so they resume as they would
have (``tests/data/tiny_adam_per_leaf`` is one). There is no version number: the paths are it.

Every item except ``models`` and ``config`` is optional, so an inference user restores
only what ``js.load`` needs.
"""

from __future__ import annotations

import contextlib
import json
import pathlib
from typing import Any, Sequence

import jax
from absl import logging as absl_logging
import ml_collections
import orbax.checkpoint as ocp

from jaxspatial.errors import UserError

CHECKPOINTS = "checkpoints"
ITEMS = ("models", "config", "train", "data")
_JSON_ITEMS = ("config", "data")


def checkpoint_root(directory: str | pathlib.Path) -> pathlib.Path:
  return pathlib.Path(directory).absolute() / CHECKPOINTS


def manager(directory: str | pathlib.Path, *, max_to_keep: int | None = None,
            save_interval_steps: int = 1, async_save: bool = True,
            read_only: bool = False) -> ocp.CheckpointManager:
  """A CheckpointManager over ``DIR/checkpoints`` with this project's item names."""
  options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, save_interval_steps=save_interval_steps,
      enable_async_checkpointing=async_save, read_only=read_only, create=not read_only)
  return ocp.CheckpointManager(checkpoint_root(directory), options=options, item_names=ITEMS)


def save_args(**items: Any) -> ocp.args.Composite:
  """Composite save args: JSON for ``config``/``data``, StandardSave for PyTrees."""
  args = {}
  for name, value in items.items():
    if name not in ITEMS:
      raise ValueError(f"unknown checkpoint item {name!r}")
    if name == "config" and isinstance(value, ml_collections.ConfigDict):
      value = json.loads(value.to_json_best_effort())
    args[name] = ocp.args.JsonSave(value) if name in _JSON_ITEMS else ocp.args.StandardSave(value)
  return ocp.args.Composite(**args)


def restore_args(**targets: Any) -> ocp.args.Composite:
  """Composite restore args; a PyTree target may be None (restore as saved) or abstract."""
  args = {}
  for name, target in targets.items():
    args[name] = (ocp.args.JsonRestore() if name in _JSON_ITEMS
                  else ocp.args.StandardRestore(target))
  return ocp.args.Composite(**args)


def save_model_dir(directory: str | pathlib.Path, models: dict, config: ml_collections.ConfigDict,
                   step: int = 0) -> pathlib.Path:
  """Writes a model directory holding only ``models`` and ``config`` (synchronously)."""
  mngr = manager(directory, async_save=False)
  mngr.save(step, args=save_args(models=models, config=config), force=True)
  mngr.wait_until_finished()
  mngr.close()
  return checkpoint_root(directory) / str(step)


def resolve_step(directory: str | pathlib.Path, step: int | None = None) -> int:
  """The latest step in DIR (or checks that ``step`` exists); UserError if none."""
  root = checkpoint_root(directory)
  if not pathlib.Path(directory).exists():
    raise UserError(f"checkpoint directory {directory} does not exist")
  steps = sorted(int(p.name) for p in root.glob("*") if p.name.isdigit()) if root.is_dir() else []
  if not steps:
    raise UserError(f"{directory} holds no checkpoint (expected {root}/<step>/, written by "
                    "'python -m jaxspatial.train' or 'python -m jaxspatial.convert_torch')")
  if step is None:
    return steps[-1]
  if step not in steps:
    raise UserError(f"{directory} has no checkpoint for step {step}; it has {steps}")
  return step


def saved_items(mngr: ocp.CheckpointManager, step: int) -> set[str]:
  """Names of the items saved for ``step``, read from the step directory (asking the manager
  would make Orbax warn about every item it has no handler registered for yet)."""
  path = mngr.directory / str(step)
  return {p.name for p in path.iterdir() if p.is_dir()} & set(ITEMS) if path.is_dir() else set()


def read_config(directory: str | pathlib.Path, step: int | None = None, *,
                kind: str | Sequence[str] | None = None, name: str | None = None,
                user: str = "this command", hint: str = "") -> ml_collections.ConfigDict:
  """The config a checkpoint was saved with (cheap: no arrays are read).

  With ``kind`` (a model kind, or the kinds the caller accepts), a checkpoint of another kind
  is a one-line UserError naming it, the kind it holds and the kinds needed::

      {name} holds a 'ssn' model; {user} needs a stylegan2 checkpoint{hint}

  ``name`` is how the user gave the directory (e.g. ``"--generator runs/g"``; the directory by
  default), ``user`` who needs it (e.g. ``"SSN training"``), ``hint`` text added at the end.
  """
  step = resolve_step(directory, step)
  path = checkpoint_root(directory) / str(step) / "config" / "metadata"
  if not path.is_file():
    raise UserError(f"{path.parent} is missing: not a jaxspatial checkpoint")
  config = ml_collections.ConfigDict(json.loads(path.read_text()))
  if kind is not None:
    wanted = (kind,) if isinstance(kind, str) else tuple(kind)
    found = (config.get("model") or {}).get("kind")
    if found not in wanted:
      either = " or ".join(filter(None, (", ".join(wanted[:-1]), wanted[-1])))
      raise UserError(f"{name or directory} holds a {found!r} model; {user} needs a {either} "
                      f"checkpoint{hint}")
  return config


@contextlib.contextmanager
def _quiet_absl():
  """Orbax logs absl warnings for a bare item directory (no step metadata); ours are fine."""
  level = absl_logging.get_verbosity()
  absl_logging.set_verbosity(absl_logging.ERROR)
  try:
    yield
  finally:
    absl_logging.set_verbosity(level)


def restore_models(directory: str | pathlib.Path, step: int | None = None) -> dict:
  """The ``models`` item of a checkpoint as saved (numpy/jax arrays on the default device)."""
  step = resolve_step(directory, step)
  path = checkpoint_root(directory) / str(step) / "models"
  if not path.is_dir():
    raise UserError(f"{path} is missing: not a jaxspatial checkpoint")
  with ocp.StandardCheckpointer() as ckptr, _quiet_absl():
    # Restore onto this process's first device whatever topology wrote the checkpoint
    # (e.g. 8 devices of 2 processes -> one CPU).
    tree = ckptr.metadata(path).item_metadata
    tree = getattr(tree, "tree", tree)
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device), tree)
    return ckptr.restore(path, target)
