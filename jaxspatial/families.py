"""The one registry of model families: ``config.model.kind`` -> everything that differs.

A :class:`Family` names a kind's Flax builders, its training plug-in and trainer, the class
``js.load`` returns (whose methods say how edit/ projects and drags it), the studio engine that
serves it, the metrics only it has, the converters ``convert_torch --target`` offers, and what
the latent regressor predicts for its generator and how it renders that. Every
lookup by kind goes through :func:`get`: :func:`build_generator` / :func:`build_discriminator`,
``training.loop.Trainer`` and ``train``, ``api.model.load``, ``studio.engines.load_engine``,
``metrics.registry.evaluate``, ``project``, ``convert_torch``, the regressor
(``losses.regressor.regression_target``). Nothing else branches on a kind
string: adding a family touches its own files plus one :func:`register` call.

The built-in entries name their pieces as ``"module:attribute"`` strings, imported on first
use: looking a family up imports nothing, so ``js.load`` of an SSN imports the SSN API class
and its Flax modules but never ``jaxspatial.training``. A family registered at run time (a
test, a user's own model) may give the objects themselves::

    families.register(families.Family(
        "mygan", generator=build_my_generator,                # config.model -> Flax module
        training="jaxspatial.training.gan_step:StyleGAN2Plugin"))
    # python -m jaxspatial.train / Trainer / js.load now handle model.kind = "mygan"

How to add a family (the files it touches): docs/architecture.md.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Mapping

from jaxspatial.errors import UserError

Ref = "str | Callable[..., Any] | type"
"""A ``"module:attribute"`` string (imported on first use) or the object itself."""


def resolve(ref: Any) -> Any:
  """The object a :data:`Ref` names."""
  if isinstance(ref, str):
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)
  return ref


@dataclasses.dataclass(frozen=True)
class Family:
  """One model kind.

  Attributes:
    kind: the ``config.model.kind`` string.
    generator: ``config.model -> Flax generator`` (None: the kind has no generator of its own,
      e.g. the regressor, whose generator is a frozen one of a family with a ``regression``).
    discriminator: ``config.model -> Flax discriminator``; None: StyleGAN2's.
    model: the :class:`jaxspatial.api.model.Model` subclass ``js.load`` returns; its class
      attributes and methods are the edit layer's hooks (``projection_spaces``, ``draggable``,
      ``sample_w``, ``w_to_style``, ``synthesis``, ``edit_controls``, ... in ``api.model``).
    studio: the ``studio.engines.Engine`` subclass the studio serves the kind with (its
      ``edits``/``ops`` say what the page offers), or None: the studio cannot open it.
    metrics: names of ``metrics.registry`` metrics that only this kind has (e.g. SSN's
      ``distortion``); ``evaluate`` refuses them for other kinds.
    training: the GAN-step plug-in (a ``training.gan_step.StyleGAN2Plugin`` subclass) that
      ``training.loop.Trainer`` drives; None for a kind that is not trained as a GAN.
    trainer: ``config -> trainer`` used by ``python -m jaxspatial.train``
      (``training.loop.Trainer`` or one with the same methods).
    validate: ``config -> None`` run before training (raises UserError), or None.
    complete: ``config -> config`` as the trainer saves it (the fields it derives, e.g. from
      a generator directory, filled in), or None when the trainer saves the config as given.
    converters: ``convert_torch --target`` name -> ``fn(loaded_torch_object, **kw) -> (models,
      config, summary lines)``.
    regression: what the latent regressor (kind "regressor") predicts for this kind's
      generator and how that generator renders it: a ``losses.regressor.RegressionTarget``;
      None: the regressor cannot invert the kind.
  """
  kind: str
  generator: Any = None
  discriminator: Any = None
  model: Any = "jaxspatial.api.model:GeneratorModel"
  studio: Any = "jaxspatial.studio.engines:Engine"
  metrics: tuple[str, ...] = ()
  training: Any = "jaxspatial.training.gan_step:StyleGAN2Plugin"
  trainer: Any = "jaxspatial.training.loop:Trainer"
  validate: Any = "jaxspatial.training.config_lib:validate"
  complete: Any = None
  converters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  regression: Any = None

  def build_generator(self, model_cfg) -> Any:
    if self.generator is None:
      raise UserError(f"model kind {self.kind!r} has no generator of its own")
    return resolve(self.generator)(model_cfg)

  def build_discriminator(self, model_cfg) -> Any:
    return resolve(self.discriminator or FAMILIES["stylegan2"].discriminator)(model_cfg)


FAMILIES: dict[str, Family] = {}


def register(family: Family, replace: bool = False) -> Family:
  """Adds ``family`` under its kind (``replace=True`` to redefine one)."""
  if family.kind in FAMILIES and not replace:
    raise ValueError(f"model kind {family.kind!r} is already registered")
  FAMILIES[family.kind] = family
  return family


def unregister(kind: str) -> None:
  """Removes a family registered at run time."""
  FAMILIES.pop(kind, None)


def get(kind: str | None) -> Family:
  """The family of ``kind``; a one-line UserError for an unknown one."""
  if kind not in FAMILIES:
    raise UserError(f"unknown model kind {kind!r} (known: {', '.join(sorted(FAMILIES))})")
  return FAMILIES[kind]


def build_generator(model_cfg) -> Any:
  """``config.model`` -> the generator module of family ``model_cfg.kind``."""
  return get(model_cfg.get("kind")).build_generator(model_cfg)


def build_discriminator(model_cfg) -> Any:
  """``config.model`` -> the discriminator module (StyleGAN2's unless the family has its own)."""
  return get(model_cfg.get("kind")).build_discriminator(model_cfg)


def kinds_with(test: Callable[[Family], Any]) -> list[str]:
  """The registered kinds whose family passes ``test`` (in registration order), e.g. for an
  error that says which kinds offer an operation."""
  return [kind for kind, family in FAMILIES.items() if test(family)]


def converters() -> dict[str, Any]:
  """Every ``convert_torch --target`` name -> its converter (:data:`Ref`)."""
  return {name: fn for family in FAMILIES.values() for name, fn in family.converters.items()}


register(Family(
    "stylegan2",
    generator="jaxspatial.models:stylegan2_generator",
    discriminator="jaxspatial.models:stylegan2_discriminator",
    converters={"stylegan2": "jaxspatial.convert.rosinality:convert_stylegan2"},
    regression="jaxspatial.losses.regressor:WPLUS_TARGET"))
register(Family(
    "ssn",
    generator="jaxspatial.models.ssn:build_generator",
    model="jaxspatial.api.ssn:SSNModel",
    studio="jaxspatial.studio.engines:SSNEngine",
    metrics=("distortion",),
    training="jaxspatial.training.ssn:SSNPlugin",
    converters={"ssn": "jaxspatial.convert.rosinality:convert_ssn"},
    regression="jaxspatial.losses.regressor:BLOCK_GRID_TARGET"))
register(Family(
    "spatialgan",
    generator="jaxspatial.models.spatialgan:build_generator",
    model="jaxspatial.api.spatialgan:SpatialGANModel",
    studio="jaxspatial.studio.engines:SpatialGANEngine",
    metrics=("comove",),
    training="jaxspatial.training.spatialgan:SpatialGANPlugin",
    regression="jaxspatial.losses.regressor:HEATMAP_TARGET"))
register(Family(
    "regressor",
    model="jaxspatial.api.regressor:RegressorModel",
    studio="jaxspatial.studio.engines:RegressorEngine",
    training=None,
    trainer="jaxspatial.training.regressor:RegressorTrainer",
    validate=None,
    complete="jaxspatial.training.regressor:completed_config"))
