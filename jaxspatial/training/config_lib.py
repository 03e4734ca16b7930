"""The shared defaults of every config, the one loader of ``configs/*.py``, and the checks
run before compiling.

A preset is read in one file: ``configs/<family>.py`` starts from :func:`base_config` (the
defaults every GAN family shares, stylegan2-ada's ``paper256`` values) and sets, per preset,
everything else -- batch, steps, data, model width, and the R1, EMA and loss values that differ
from those defaults. Keys shared by every family (DESIGN.md): ``seed``, ``batch_size``
(global), ``total_steps``, ``checkpoint_every``, ``log_every``, ``sample_every``, ``data.*``,
``model.*``, ``optim.*``, ``loss.*``.

Load a preset with :func:`load` -- ``load("ssn", "demo")``, or the command-line form
``load("configs/ssn.py:demo")`` -- never by importing the file by hand.
"""

from __future__ import annotations

import importlib.util
import pathlib

import jax
import ml_collections

from jaxspatial import models as models_lib
from jaxspatial.errors import UserError
from jaxspatial.models import stylegan2 as sg2
from jaxspatial.training import augment as augment_lib
from jaxspatial.training import compile_cache

PRESETS = ("tiny", "demo", "paper256")
"""The presets every family has (``configs/<family>.py``'s ``PRESETS`` may add some)."""

CONFIGS_DIR = pathlib.Path(__file__).resolve().parents[2] / "configs"
"""The repository's ``configs/`` (next to the package in a source checkout)."""


def load(config: str, preset: str | None = None) -> ml_collections.ConfigDict:
  """``get_config(preset)`` of a config file: ``load("ssn", "demo")`` (a family's file in
  :data:`CONFIGS_DIR`), ``load("configs/ssn.py:demo")`` (the ``--config`` form of
  ``python -m jaxspatial.train``, relative to the working directory or the repository) or
  ``load("/path/to/my_config.py", "tiny")``. Without a preset, the file's default. A missing
  file is a :class:`UserError`; an unknown preset the file's ``ValueError``."""
  path_text = config
  if preset is None and ":" in config:
    path_text, preset = config.rsplit(":", 1)
  if path_text.endswith(".py"):
    path = pathlib.Path(path_text)
    if not path.is_absolute() and not path.is_file():
      path = CONFIGS_DIR.parent / path
  else:
    path = CONFIGS_DIR / f"{path_text}.py"
  if not path.is_file():
    raise UserError(f"{path}: no such config file")
  spec = importlib.util.spec_from_file_location(f"jaxspatial_config_{path.stem}", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config() if preset is None else module.get_config(preset)


def check_preset(preset: str | None, presets: tuple[str, ...] = PRESETS) -> str:
  """``preset`` (empty: ``demo``), or a ValueError naming the choices."""
  preset = preset or "demo"
  if preset not in presets:
    raise ValueError(f"unknown preset {preset!r}; choose one of {presets}")
  return preset


def data_config(resolution: int, source: str = "shapes") -> ml_collections.ConfigDict:
  """``jaxspatial.data.pipeline.default_data_config()`` at a resolution and source."""
  from jaxspatial.data import pipeline
  c = pipeline.default_data_config()
  c.update(source=source, resolution=resolution)
  return c


def base_config(preset: str) -> ml_collections.ConfigDict:
  """The defaults every GAN config starts from; each ``configs/<family>.py`` then sets
  ``batch_size``, ``total_steps``, ``checkpoint_every``, ``log_every``, ``sample_every``,
  ``data`` and ``model`` per preset, and whatever differs from these.

  Training values are stylegan2-ada's ``paper256`` (Karras et al. 2020, "Training Generative
  Adversarial Networks with Limited Data", train.py ``cfg_specs['paper256']`` and the loss's
  defaults): Adam lr 0.0025 betas (0, 0.99); R1 γ = 1 every 16 steps (lazy); path length
  weight 2 every 4 steps, decay 0.01, on half the batch; style mixing 0.9; EMA half-life
  20 kimg, no ramp-up.
  """
  c = ml_collections.ConfigDict()
  c.preset = preset
  c.seed = 0
  c.mesh = ml_collections.ConfigDict(dict(data=-1))   # -1: all devices on the data axis
  c.optim = ml_collections.ConfigDict(dict(g_lr=0.0025, d_lr=0.0025, b1=0.0, b2=0.99, eps=1e-8))
  c.loss = ml_collections.ConfigDict(dict(
      r1_gamma=1.0, r1_every=16, pl_weight=2.0, pl_every=4, pl_decay=0.01,
      pl_batch_shrink=2, style_mixing=0.9))
  c.ema_kimg = 20.0
  c.ema_rampup = 0.0          # 0 = none; stylegan2-ada uses 0.05 for small datasets
  c.keep_checkpoints = 3
  c.num_samples = 16          # sample-grid size (fixed latents from ``seed``)
  c.init_from = ""            # checkpoint dir to start G/D from (fine-tuning, SSN transfer)
  c.compile_cache_dir = compile_cache.DEFAULT_DIR   # persistent XLA cache; "" = off
  c.augment = augment_lib.default_config()   # what D sees (none | fixed | ada), see augment.py
  c.freeze_d = 0              # FreezeD: D's first N layers stay fixed (stylegan2-ada --freezed)
  return c


def _validate_labels(m: ml_collections.ConfigDict, d: ml_collections.ConfigDict) -> None:
  """A conditional model (``model.c_dim > 0``) needs a folder/zip whose ``dataset.json``
  labels have ``c_dim`` dimensions (lists the files, reads no image)."""
  c_dim = int(models_lib.setting(m, "c_dim"))
  if not c_dim:
    return
  if d.source not in ("folder", "zip"):
    raise UserError(f"model.c_dim={c_dim} needs labelled data: data.source folder or zip with "
                    f"stylegan2-ada's dataset.json, not {d.source!r}")
  from jaxspatial.data import pipeline
  found = pipeline.make_source(d).c_dim
  if not found:
    raise UserError(f"model.c_dim={c_dim}, but {d.path} has no dataset.json labels")
  if found != c_dim:
    raise UserError(f"the labels have {found} dimensions, model.c_dim is {c_dim}")


def validate(config: ml_collections.ConfigDict, num_devices: int | None = None,
             num_processes: int | None = None) -> None:
  """One-line UserError for a config that cannot run, before anything is compiled."""
  num_devices = num_devices or jax.device_count()
  num_processes = num_processes or jax.process_count()
  m, d = config.model, config.data
  try:
    sg2.log2_resolution(int(m.resolution))
  except ValueError:
    raise UserError(f"model.resolution must be a power of two >= 4, got {m.resolution}") from None
  if d.resolution != m.resolution:
    raise UserError(f"data.resolution ({d.resolution}) differs from model.resolution "
                    f"({m.resolution})")
  b = int(config.batch_size)
  if b <= 0 or b % num_devices:
    raise UserError(f"batch_size {b} is not divisible by the {num_devices} devices")
  if b % num_processes:
    raise UserError(f"batch_size {b} is not divisible by the {num_processes} processes")
  from jaxspatial.data import pipeline
  pipeline.validate_data_config(d)
  _validate_labels(m, d)
  loss = config.loss
  if loss.pl_weight > 0 and (b // loss.pl_batch_shrink) % num_devices:
    raise UserError(f"path-length batch {b // loss.pl_batch_shrink} (batch_size / "
                    f"loss.pl_batch_shrink) is not divisible by the {num_devices} devices")
  for key in ("r1_every", "pl_every", "align_every"):
    if key in loss and loss[key] < 1:
      raise UserError(f"loss.{key} must be >= 1, got {loss[key]}")
  if config.total_steps < 0:
    raise UserError(f"total_steps must be >= 0, got {config.total_steps}")
  _validate_augment(augment_lib.augment_config(config))
  if config.freeze_d < 0:
    raise UserError(f"freeze_d must be >= 0, got {config.freeze_d}")
  _validate_model(config, b)


def _validate_augment(aug: ml_collections.ConfigDict) -> None:
  if aug.kind not in augment_lib.KINDS:
    raise UserError(f"augment.kind must be one of {augment_lib.KINDS}, got {aug.kind!r}")
  if aug.spec not in augment_lib.PRESETS:
    raise UserError(f"augment.spec must be one of {sorted(augment_lib.PRESETS)}, got {aug.spec!r}")
  if aug.p < 0 or aug.interval < 1 or aug.speed_kimg <= 0:
    raise UserError("augment needs p >= 0, interval >= 1 and speed_kimg > 0, got "
                    f"p={aug.p}, interval={aug.interval}, speed_kimg={aug.speed_kimg}")


def _validate_model(config: ml_collections.ConfigDict, batch_size: int) -> None:
  """The family's own checks (its builders refuse a model section they cannot build), the
  discriminator's minibatch-stddev grouping, and ``init_from``'s kind -- all without tracing."""
  from jaxspatial import families
  m = config.model
  try:
    families.build_generator(m)
    families.build_discriminator(m)
  except ValueError as e:
    raise UserError(f"model: {e}") from None
  group = min(batch_size, int(models_lib.setting(m, "mbstd_group_size") or 1))
  if batch_size % group:
    raise UserError(f"batch_size {batch_size} is not divisible by the discriminator's "
                    f"minibatch-stddev group (model.mbstd_group_size={group})")
  init_from = config.init_from
  if init_from:
    from jaxspatial import checkpoint
    checkpoint.read_config(init_from, kind=sorted({m.kind, "stylegan2"}),
                           name=f"init_from={init_from}", user=f"a {m.kind} run")
