"""``js.load(path) -> Model``: inference on any checkpoint directory.

A :class:`Model` holds a family's Flax modules, their variables and the config, and exposes
numpy-in/numpy-out methods (NHWC float32 images in [-1, 1]) that are jitted inside and
compiled once per input shape. Families with extra operations (SSN, SpatialGAN, the
regressor) subclass :class:`GeneratorModel` (or :class:`Model`); the family registry
(:mod:`jaxspatial.families`) says which class ``load`` returns for a ``model.kind``.

A model class is also where the edit layer (:mod:`jaxspatial.edit`) learns what differs per
family: :attr:`GeneratorModel.projection_spaces`, :attr:`~GeneratorModel.draggable` and the
pure, jax-traceable hooks of :class:`GeneratorModel` ("hooks of the edit layer": the latent a
projection optimises, how it becomes styles, the synthesis with the family's extra controls
such as SpatialGAN's heatmaps). edit/ calls them and never branches on ``model.kind``; its
compiled programs live in the model's :meth:`Model.cached` store, jitted with :meth:`Model.jit`.

This package does not import :mod:`jaxspatial.edit`: ``GeneratorModel.project`` reaches the
projector through :data:`PROJECT`, a ``"module:attr"`` string resolved on first call (the one
declared seam from api up to edit).
"""

from __future__ import annotations

import functools
import pathlib
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxspatial import checkpoint, families
from jaxspatial import models as models_lib
from jaxspatial.errors import UserError
from jaxspatial.models import stylegan2 as sg2
from jaxspatial.models.stylegan2 import NOISE_MODES

PROJECT = "jaxspatial.edit.projection:project"
"""The projector ``GeneratorModel.project`` calls (resolved with :func:`families.resolve`)."""


class Model:
  """Common base: ``kind``, ``config``, ``path``, ``step`` and the restored variables."""

  def __init__(self, config: ml_collections.ConfigDict, variables: dict,
               path: pathlib.Path | None = None, step: int | None = None,
               precision: str = "highest"):
    self.config = config
    self.kind: str = config.model.kind
    self.variables = variables
    self.path = path
    self.step = step
    self.precision = precision
    self._cache: dict[Any, Any] = {}

  batch_size = 16  # images per compiled call; larger requests are chunked

  projection_spaces: tuple[str, ...] = ()
  """The ``space`` values :mod:`jaxspatial.edit.projection` can project into (none: the model
  cannot be projected into)."""
  draggable: bool = False
  """Whether :mod:`jaxspatial.edit.drag` can drag this model's images."""

  def _chunked(self, fn: Callable[[int, slice], Any], n: int) -> Any:
    """``fn(i, s)`` on the i-th ``batch_size`` slice ``s`` of ``range(n)``, concatenated (an
    array, or each leaf of a pytree such as a regressor's dict code)."""
    outs = [jax.tree.map(np.asarray, fn(i, slice(start, start + self.batch_size)))
            for i, start in enumerate(range(0, n, self.batch_size))]
    if not outs:
      return np.zeros((0,), np.float32)
    return jax.tree.map(lambda *parts: np.concatenate(parts), *outs)

  def jit(self, fn: Callable, **kw) -> Callable:
    """``jax.jit(fn, **kw)`` run under this model's matmul/conv precision (every compiled
    program of a model, its own and the edit layer's, goes through here)."""
    jitted = jax.jit(fn, **kw)

    @functools.wraps(fn)
    def call(*args, **kwargs):
      with jax.default_matmul_precision(self.precision):
        return jitted(*args, **kwargs)
    return call

  def cached(self, key: Any, build: Callable[[], Any]) -> Any:
    """``build()`` once per hashable ``key`` for this model, then the same object: where the edit
    layer keeps what it compiled for a model (a projection step, a PTI step), so that it
    compiles once per model and goes away with it."""
    if key not in self._cache:
      self._cache[key] = build()
    return self._cache[key]

  def __repr__(self) -> str:
    where = f", path={str(self.path)!r}, step={self.step}" if self.path else ""
    return f"{type(self).__name__}(kind={self.kind!r}{where})"


class GeneratorModel(Model):
  """A StyleGAN2-family generator (+ discriminator when the checkpoint has one)."""

  def __init__(self, config, variables, **kw):
    super().__init__(config, variables, **kw)
    if "g_ema" in variables:
      self.g_vars = variables["g_ema"]
    elif "g" in variables:
      self.g_vars = variables["g"]
    else:
      raise UserError("checkpoint holds no generator ('g_ema' or 'g')")
    self.d_vars = variables.get("d")
    self.generator = families.build_generator(config.model)
    self.discriminator = (families.build_discriminator(config.model)
                          if self.d_vars is not None else None)
    g = self.generator
    labelled = lambda c: {} if c is None else {"labels": c}  # noqa: E731
    self._mapping = self.jit(lambda v, z, c: g.apply(v, z, method=type(g).mapping,
                                                      **labelled(c)))
    self._synthesize = self.jit(
        lambda v, ws, noise_mode, key: g.apply(v, ws, noise_mode, method=type(g).synthesize,
                                               rngs={"noise": key}),
        static_argnums=2)
    self._synthesize_maps = self.jit(
        lambda v, ws, maps: g.apply(v, ws, "const", maps, method=type(g).synthesize))
    self._truncate = self.jit(
        lambda v, w, psi, cutoff: g.apply(v, w, psi, method=type(g).truncate,
                                          **({} if cutoff is None else {"cutoff": cutoff})),
        static_argnums=3)
    if self.discriminator is not None:
      d = self.discriminator
      self._discriminate = self.jit(lambda v, x, c: d.apply(v, x, **labelled(c)))

  # ------------------------------------------------------------------ properties

  @property
  def resolution(self) -> int:
    return int(self.config.model.resolution)

  @property
  def z_dim(self) -> int:
    return int(self.config.model.z_dim)

  @property
  def w_dim(self) -> int:
    return int(self.config.model.w_dim)

  @property
  def num_ws(self) -> int:
    return int(self.generator.num_ws)

  @property
  def c_dim(self) -> int:
    """Label dimension of a conditional model (0: unconditional)."""
    return int(models_lib.setting(self.config.model, "c_dim"))

  @property
  def latent_shape(self) -> tuple[int, ...]:
    """Per-sample z shape: (z_dim,) (SSN: (nh, nw, z_dim))."""
    return (self.z_dim,)

  @property
  def style_shape(self) -> tuple[int, ...]:
    """Per-sample, per-layer w shape: (w_dim,) (SSN: (nh, nw, w_dim))."""
    return (self.w_dim,)

  @property
  def w_avg(self) -> np.ndarray:
    return np.asarray(self.g_vars["buffers"]["w_avg"])

  # ------------------------------------------------------------------ API

  def sample_z(self, seed: int, n: int = 1) -> np.ndarray:
    """(n, z_dim) standard-normal latents from ``seed`` (row i is the same for any n)."""
    keys = jax.random.split(jax.random.key(seed), n)
    return np.asarray(jax.vmap(lambda k: jax.random.normal(k, (self.z_dim,)))(keys))

  def _labels(self, labels: Any, n: int) -> np.ndarray | None:
    """Checks ``labels`` for n samples: class indices (n,) -> one-hot, or (n, c_dim) vectors
    as stylegan2-ada takes them; None for an unconditional model."""
    if not self.c_dim:
      if labels is not None:
        raise UserError("this model is unconditional (c_dim 0): it takes no labels")
      return None
    if labels is None:
      raise UserError(f"this model is conditional (c_dim {self.c_dim}): pass labels= (class "
                      "indices or (n, c_dim) vectors)")
    labels = np.asarray(labels)
    if labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer):
      if labels.size and not 0 <= labels.min() <= labels.max() < self.c_dim:
        raise UserError(f"class indices must be in 0..{self.c_dim - 1}, got {labels.tolist()}")
      labels = np.eye(self.c_dim, dtype=np.float32)[labels]
    return check_shape(labels, (n, self.c_dim), "labels")

  def mapping(self, z: np.ndarray, labels: Any = None) -> np.ndarray:
    """z (n, *latent_shape) [, labels] -> w (n, *style_shape)."""
    z = check_shape(z, (None, *self.latent_shape), "z")
    c = self._labels(labels, len(z))
    return self._chunked(
        lambda i, s: self._mapping(self.g_vars, z[s], None if c is None else c[s]), len(z))

  def synthesize(self, ws: np.ndarray, noise: str | Sequence[np.ndarray] = "const",
                 seed: int = 0, labels: Any = None) -> np.ndarray:
    """W+ (n, num_ws, *style_shape) -> images (n, H, W, 3); ``noise`` in const|random|none,
    or explicit per-layer maps (n or 1, R_i, R_i, 1), e.g. a projection's ``noise``.
    ``labels`` are checked but not needed: as in stylegan2-ada, only the mapping reads them,
    so W+ already carries them."""
    ws = check_shape(ws, (None, self.num_ws, *self.style_shape), "ws")
    if labels is not None:
      self._labels(labels, len(ws))
    if not isinstance(noise, str):
      maps = self.check_noise_maps(noise, len(ws))
      return self._chunked(lambda i, s: self._synthesize_maps(
          self.g_vars, ws[s], slice_maps(maps, s)), len(ws))
    check_noise(noise)
    key = jax.random.key(seed)
    return self._chunked(lambda i, s: self._synthesize(self.g_vars, ws[s], noise,
                                                       jax.random.fold_in(key, i)), len(ws))

  def generate(self, z: np.ndarray, truncation: float = 1.0, noise: str = "const",
               seed: int = 0, truncation_cutoff: int | None = None, labels: Any = None,
               **controls: Any) -> np.ndarray:
    """z (n, *latent_shape) -> images (n, H, W, 3): mapping (conditioned on ``labels`` for a
    conditional model), the same styles for every layer, truncation toward ``w_avg`` (only
    of the layers below ``truncation_cutoff`` if given), synthesis."""
    if controls:
      raise TypeError(f"{self.kind} generate() takes no controls, got {sorted(controls)}")
    w = self.mapping(z, labels)
    ws = np.repeat(w[:, None], self.num_ws, axis=1)
    if truncation != 1.0:
      ws = self.truncate(ws, truncation, truncation_cutoff)
    return self.synthesize(ws, noise=noise, seed=seed)

  def truncate(self, w: np.ndarray, truncation: float,
               truncation_cutoff: int | None = None) -> np.ndarray:
    """``w_avg + truncation (w - w_avg)`` on mapped latents (n, ..., w_dim); with
    ``truncation_cutoff`` W+ (n, num_ws, ...) only on the layers below it."""
    w = np.asarray(w, np.float32)
    if truncation_cutoff is not None:
      check_shape(w, (None, self.num_ws, *self.style_shape), "ws")
      truncation_cutoff = int(truncation_cutoff)
    return np.asarray(self._truncate(self.g_vars, w, jnp.float32(truncation),
                                     truncation_cutoff))

  def check_noise_maps(self, maps: Sequence[np.ndarray], n: int) -> list[np.ndarray]:
    """Explicit noise maps as float32 arrays; UserError unless there is one (n or 1, R_i, R_i,
    1) map per noise input."""
    sides = [sg2.noise_resolution(i) for i in range(sg2.num_noises(self.resolution))]
    maps = [np.asarray(m, np.float32) for m in maps]
    if len(maps) != len(sides) or any(
        m.ndim != 4 or m.shape[1:] != (r, r, 1) or m.shape[0] not in (1, n)
        for m, r in zip(maps, sides)):
      raise UserError(f"noise maps have shapes {[m.shape for m in maps]}; this generator takes "
                      f"{len(sides)} maps (n or 1, R, R, 1) with R = {sides}")
    return maps

  def noise_maps(self, mode: str = "const", seed: int = 0) -> list[np.ndarray]:
    """Explicit per-layer noise maps (1, R_i, R_i, 1) for ``synthesize(ws, noise=maps)``:
    ``const`` the stored maps (the same image as ``noise="const"``), ``none`` zeros (the same
    image as ``noise="none"``), ``random`` one fixed N(0, 1) draw from ``seed`` -- a noise to
    keep while editing, not the draw that ``synthesize(noise="random")`` makes per call."""
    check_noise(mode)
    sides = [sg2.noise_resolution(i) for i in range(sg2.num_noises(self.resolution))]
    if mode == "const":
      buffers = self.g_vars["buffers"]["synthesis"]
      return [np.asarray(buffers[f"noise_{i}"], np.float32) for i in range(len(sides))]
    if mode == "none":
      return [np.zeros((1, r, r, 1), np.float32) for r in sides]
    key = jax.random.key(seed)
    return [np.asarray(jax.random.normal(jax.random.fold_in(key, i), (1, r, r, 1)))
            for i, r in enumerate(sides)]

  def project(self, image: np.ndarray, **options: Any):
    """Projects real image(s) (H, W, 3) or (n, H, W, 3) in [-1, 1] into this generator ->
    :class:`jaxspatial.edit.projection.Projection`; ``options`` are
    :func:`jaxspatial.edit.projection.project`'s (steps, space, loss, init_ws, seed, ...).
    The projector is :data:`PROJECT`, looked up on first call (api does not import edit)."""
    return families.resolve(PROJECT)(self, image, **options)

  def check_ws(self, ws: Any, n: int | None = None, name: str = "ws") -> np.ndarray:
    """``ws`` as float32 W+ (n, num_ws, *style_shape) of this model; UserError otherwise."""
    return check_shape(ws, (n, self.num_ws, *self.style_shape), name)

  # ------------------------------------------------------------------ hooks of the edit layer
  # Pure functions of the generator variables ``g_vars`` (jax-traceable: edit/ jits them with
  # its own steps) and the checks around them. They say what a projection, PTI and a drag
  # optimise for this family; a family whose latent or synthesis differs overrides them here
  # (api/<kind>.py), never in edit/.

  projection_spaces = ("w", "wplus")   # w: one latent for every layer; wplus: one per layer
  draggable = True

  def sample_w(self, g_vars: Any, key: jax.Array, n: int) -> jax.Array:
    """(n, *w) mapped from fresh z: the samples the projector's W statistics (its start
    ``w̄`` and ``σ_w``) are computed from; ``w̄`` is broadcast to ``style_shape``."""
    g = self.generator
    z = jax.random.normal(key, (n, *self.latent_shape))
    return g.apply(g_vars, z, method=type(g).mapping)

  def w_to_style(self, g_vars: Any, w: jax.Array) -> jax.Array:
    """A ``w``-space latent (n, *style_shape) -> the style every layer takes (n, *style_shape):
    the latent itself here (SSN: its block encoder)."""
    return w

  def sample_styles(self, g_vars: Any, key: jax.Array, n: int) -> jax.Array:
    """(n, *style_shape): per-layer styles of ``n`` fresh latents (PTI's locality samples)."""
    return self.w_to_style(g_vars, self.sample_w(g_vars, key, n))

  def w_from_styles(self, ws: np.ndarray) -> np.ndarray:
    """W+ (n, num_ws, *style_shape) -> the ``w``-space latent a projection starts from
    (``init_ws``): its mean over the layers."""
    return np.asarray(ws).mean(axis=1)

  def synthesis(self, g_vars: Any, ws: jax.Array, controls: Any, noise: Any,
                features: bool = False) -> Any:
    """W+ (n, num_ws, *style_shape) -> images (n, H, W, 3) (and the per-block features with
    ``features``), with explicit per-layer ``noise`` maps (None: the stored ones) and the
    family's ``controls`` (None here; SpatialGAN: its heatmaps)."""
    g = self.generator
    return g.apply(g_vars, ws, "const", noise, features, method=type(g).synthesize)

  def edit_controls(self, controls: Any, n: int, seed: int | None = None) -> Any:
    """The controls an edit of ``n`` images renders with, checked (numpy): ``controls`` if given
    (one is repeated), else drawn from ``seed`` or, without a seed, an error when the family
    needs them. None here: a StyleGAN2 has no controls (given ones are ignored)."""
    return None

  def control_params(self, controls: Any, edit: str) -> dict[str, Any]:
    """The arrays of ``controls`` that ``edit`` ("project" or "drag") optimises, by name
    (projection scales their lr by ``heatmap_lr_ratio``; a drag steps them with ``center_lr``);
    {} here."""
    return {}

  def with_control_params(self, controls: Any, params: dict[str, Any]) -> Any:
    """``controls`` with the optimised arrays of ``params`` (:meth:`control_params`' names; other
    keys ignored) put back (traceable)."""
    return controls

  def drag_controls(self, controls: Any, handles: np.ndarray, targets: np.ndarray,
                    alpha: float, radius: float) -> Any:
    """The controls before a drag of ``handles`` to ``targets`` (pixels) starts (SpatialGAN: the
    optimisation-free coarse heatmap move, eq. 6); unchanged here."""
    return controls

  def discriminate(self, x: np.ndarray, labels: Any = None) -> np.ndarray:
    """Images (n, H, W, 3) in [-1, 1] [, labels] -> logits (n,). Batches are scored as given
    (the minibatch-stddev feature couples samples within a group)."""
    if self.discriminator is None:
      raise UserError("this checkpoint holds no discriminator ('d')")
    x = check_shape(x, (None, self.resolution, self.resolution, 3), "x")
    return np.asarray(self._discriminate(self.d_vars, x, self._labels(labels, len(x))))


def check_shape(a: Any, shape: tuple, name: str) -> np.ndarray:
  """``a`` as float32 numpy; UserError unless its shape matches ``shape`` (None: any size)."""
  a = np.asarray(a, np.float32)
  if a.ndim != len(shape) or any(s is not None and s != t for s, t in zip(shape, a.shape)):
    want = "(" + ", ".join("n" if s is None else str(s) for s in shape) + ")"
    raise UserError(f"{name} has shape {a.shape}; expected {want}")
  return a


def slice_maps(maps: list[np.ndarray], s: slice) -> list[np.ndarray]:
  """Rows ``s`` of per-sample noise maps (maps with batch 1 are shared as they are)."""
  return [m if len(m) == 1 else m[s] for m in maps]


def check_noise(noise: str) -> None:
  """UserError unless ``noise`` is one of :data:`NOISE_MODES`."""
  if noise not in NOISE_MODES:
    raise UserError(f"noise must be one of {'|'.join(NOISE_MODES)}, got {noise!r}")


def load(path: str | pathlib.Path, step: int | None = None,
         precision: str = "highest") -> Model:
  """Opens a checkpoint directory written by ``train`` or ``convert_torch``.

  Args:
    path: the directory (``--workdir`` of a training run or ``--out`` of a conversion).
    step: a specific checkpoint step (default: the latest).
    precision: matmul/conv precision for inference ("highest" reproduces PyTorch float32;
      "default" lets GPUs/TPUs use TF32/bf16 passes).
  """
  path = pathlib.Path(path)
  step = checkpoint.resolve_step(path, step)
  config = checkpoint.read_config(path, step)
  cls = families.resolve(families.get(config.get("model", {}).get("kind")).model)
  variables = checkpoint.restore_models(path, step)
  return cls(config, variables, path=path, step=step, precision=precision)
