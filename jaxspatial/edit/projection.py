"""Projection of real images into a generator: StyleGAN2 W / W+, SSN's block grid, SpatialGAN's
latent and heatmaps.

The method is stylegan2-ada's projector (Karras et al. 2020, ``projector.py``) for every family:

* statistics of W from ``w_avg_samples`` (10k) mapped latents: the start ``w̄`` (their mean) and
  ``σ_w = sqrt(Σ_i |w_i - w̄|² / N)``;
* per step ``t = step / steps``: the optimised latent is perturbed by Gaussian noise of scale
  ``σ_w · 0.05 · max(0, 1 - t / 0.75)²`` (:func:`latent_noise_scale`), rendered with the
  optimised per-layer noise maps, and scored by a distance to the target (``lpips``: LPIPS-VGG
  of the ported network; ``mse``; ``critic``: :func:`jaxspatial.nets.critic.feature_distance`
  on the model's own discriminator; ``auto``, the default: the first of those three the model
  can use, :func:`available_losses`) plus ``1e5 ×`` the multi-scale noise regulariser
  (:func:`noise_regularizer`);
* Adam (betas 0.9, 0.999) with the lr warm-up / cosine ramp-down of :func:`learning_rate`
  (peak 0.1); after every step each noise map is renormalised to zero mean, unit variance.

Per family, the optimised latent (``Projection.latent``) is: StyleGAN2 ``w`` (n, w_dim) repeated
over layers (``space="w"``) or W+ (n, num_ws, w_dim) (``"wplus"``); SSN the per-block mapping
output (n, nh, nw, w_dim) *before* the block encoder (``"w"``, so a block can be redrawn and
re-encoded, :func:`resampled_ws`) or the spatial W+ (n, num_ws, nh, nw, w_dim); SpatialGAN
``w`` or W+ plus the heatmap centres and log-sigmas (lr × ``heatmap_lr_ratio``), so the result
can be edited by moving heatmaps.

Two choices differ from the official projector: the noise maps start from the generator's stored
constant maps (ada redraws them), so a projection of 0 steps renders its start exactly (the
regressor-alone baseline of ``init_ws``); and the W statistics use a fixed jax seed instead of
``RandomState(123)``. A batch of images is projected at once; every image has its own latent,
noise and Adam moments, and the summed loss leaves their gradients independent, so the result
for an image does not depend on the batch it is in. One jitted step serves every step and every
target of a shape (the schedule is computed from the traced step index); the loop reads values
back only for the progress snapshots and at the end. :mod:`jaxspatial.edit.pti` tunes the
generator around a projection (PTI).

What differs per family is the model's (``js.load``'s class, :mod:`jaxspatial.api`): its
``projection_spaces``, and the hooks ``sample_w`` (the W statistics), ``w_to_style`` (SSN's block
encoder), ``synthesis`` with the family's controls and ``edit_controls`` / ``control_params`` /
``with_control_params`` (SpatialGAN's heatmaps); :class:`_Space` only broadcasts over layers.
Nothing here branches on ``model.kind``; a new family overrides those hooks in its api class.
"""

from __future__ import annotations

import dataclasses
import pathlib
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxspatial import families
from jaxspatial.errors import UserError, existing_file
from jaxspatial.models.heatmaps import Heatmaps

Array = jax.Array
SPACES = ("w", "wplus")
LOSSES = ("lpips", "mse", "critic")
LOSS_CHOICES = ("auto", *LOSSES)       # "auto": resolve_loss


def projectable(model_class) -> bool:
  """Whether models of this class (a family's ``model``) can be projected into."""
  return bool(getattr(model_class, "projection_spaces", ()))


def projectable_kinds() -> list[str]:
  """The registered kinds whose models can be projected into (for error messages)."""
  return families.kinds_with(lambda f: projectable(families.resolve(f.model)))


@dataclasses.dataclass(frozen=True)
class ProjectionConfig:
  """The projector's settings: stylegan2-ada's defaults (``heatmap_lr_ratio`` is ours)."""
  steps: int = 1000
  space: str = "w"
  loss: str = "auto"
  lr: float = 0.1
  lr_rampup: float = 0.05           # fraction of the steps
  lr_rampdown: float = 0.25
  latent_noise: float = 0.05        # x sigma_w
  latent_noise_ramp: float = 0.75
  noise_reg_weight: float = 1e5
  optimize_noise: bool = True
  w_avg_samples: int = 10_000
  heatmap_lr_ratio: float = 0.1     # SpatialGAN: lr of centres / log-sigmas relative to lr
  seed: int = 0
  snapshots: int = 8                # images kept for the progress picture

  def validate(self) -> None:
    if self.space not in SPACES:
      raise UserError(f"space must be one of {'|'.join(SPACES)}, got {self.space!r}")
    if self.loss not in LOSS_CHOICES:
      raise UserError(f"loss must be one of {'|'.join(LOSS_CHOICES)}, got {self.loss!r}")
    if self.steps < 0 or self.w_avg_samples < 2:
      raise UserError("steps must be >= 0 and w_avg_samples >= 2")


@dataclasses.dataclass
class Projection:
  """A projected batch. ``ws`` is what ``synthesize`` takes; ``latent`` what was optimised (see
  the module docstring); ``noise`` the per-layer maps (n, R, R, 1); ``heatmaps`` (SpatialGAN) the
  optimised heatmaps; ``image`` the projection, ``target`` its target, (n, H, W, 3) in [-1, 1];
  ``loss`` the final distance and ``psnr`` (dB, images clipped to [-1, 1]) per image;
  ``snapshots`` (step, images) pairs for the progress picture."""
  kind: str
  space: str
  latent: np.ndarray
  ws: np.ndarray
  noise: list[np.ndarray]
  heatmaps: Heatmaps | None = None
  image: np.ndarray | None = None
  target: np.ndarray | None = None
  loss: np.ndarray | None = None
  psnr: np.ndarray | None = None
  steps: int = 0
  seconds: float = 0.0
  snapshots: list[tuple[int, np.ndarray]] = dataclasses.field(default_factory=list)

  def arrays(self) -> dict[str, np.ndarray]:
    """The arrays of ``latent.npz`` (the latents, loss/psnr when known): what :meth:`save`
    writes and :func:`load_projection` reads."""
    arrays = {"kind": np.asarray(self.kind), "space": np.asarray(self.space),
              "latent": self.latent, "ws": self.ws, "steps": np.asarray(self.steps)}
    arrays.update({f"noise_{i}": m for i, m in enumerate(self.noise)})
    if self.heatmaps is not None:
      h = self.heatmaps.numpy()
      arrays.update(heatmap_centers=h.centers, heatmap_sigmas=h.sigmas,
                    heatmap_amplitudes=h.amplitudes, heatmap_levels=np.asarray(h.levels),
                    heatmap_parents=np.asarray(h.parents))
    for name in ("loss", "psnr"):
      if getattr(self, name) is not None:
        arrays[name] = getattr(self, name)
    return arrays

  def save(self, path: str | pathlib.Path) -> pathlib.Path:
    """Writes :meth:`arrays` as ``.npz``; :func:`load_projection` reads it."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **self.arrays())
    return path


def load_projection(path: str | pathlib.Path, model=None) -> Projection:
  """A :class:`Projection` (latents only) from a ``latent.npz``; with ``model``, UserError unless
  it was projected into a model of that kind and shape."""
  path = existing_file(path, "a latent.npz")
  try:
    with np.load(path) as f:
      data = {k: f[k] for k in f.files}
  except (OSError, ValueError, EOFError) as e:
    raise UserError(f"{path}: not a projection .npz ({e})") from None
  if not {"kind", "space", "latent", "ws"} <= set(data):
    raise UserError(f"{path} is not a latent.npz written by python -m jaxspatial.project")
  noise = [data[f"noise_{i}"] for i in range(sum(k.startswith("noise_") for k in data))]
  heatmaps = None
  if "heatmap_centers" in data:
    heatmaps = Heatmaps(centers=data["heatmap_centers"], sigmas=data["heatmap_sigmas"],
                        amplitudes=data["heatmap_amplitudes"],
                        levels=tuple(int(v) for v in data["heatmap_levels"]),
                        parents=tuple(int(v) for v in data["heatmap_parents"]))
  p = Projection(kind=str(data["kind"]), space=str(data["space"]), latent=data["latent"],
                 ws=data["ws"], noise=noise, heatmaps=heatmaps, loss=data.get("loss"),
                 psnr=data.get("psnr"), steps=int(data["steps"]))
  if model is not None:
    if model.kind != p.kind:
      raise UserError(f"{path} was projected into a {p.kind} model; this one is {model.kind}")
    want = (model.num_ws, *model.style_shape)
    if p.ws.shape[1:] != want:
      raise UserError(f"{path} holds W+ of shape {p.ws.shape[1:]}; this model takes {want}")
    model.check_noise_maps(p.noise, len(p.ws))
    if heatmaps is not None:
      model.edit_controls(heatmaps, len(p.ws))
  return p


# ------------------------------------------------------------------------- the method


def learning_rate(t: Array, cfg: ProjectionConfig) -> Array:
  """stylegan2-ada's schedule at ``t = step / steps``:
  ``lr · min(1, t / rampup) · (1 - cos(π · min(1, (1 - t) / rampdown))) / 2``."""
  down = jnp.minimum(1.0, (1.0 - t) / cfg.lr_rampdown)
  down = 0.5 - 0.5 * jnp.cos(down * jnp.pi)
  return cfg.lr * down * jnp.minimum(1.0, t / cfg.lr_rampup)


def latent_noise_scale(t: Array, w_std: Array, cfg: ProjectionConfig) -> Array:
  """Std of the noise added to the latent at ``t``: ``σ_w · 0.05 · max(0, 1 - t / 0.75)²``."""
  return w_std * cfg.latent_noise * jnp.square(jnp.maximum(0.0, 1.0 - t / cfg.latent_noise_ramp))


def noise_regularizer(noise: list[Array]) -> Array:
  """The multi-scale noise regulariser (stylegan2-ada) per image -> (n,): for every map ``v``
  and each of its 2×2 average-pooled versions down to 8 px,
  ``mean(v · roll_x(v))² + mean(v · roll_y(v))²`` summed (penalises spatial correlation, so the
  noise cannot carry the image)."""
  total = 0.0
  for v in noise:
    while True:
      total = total + jnp.square(jnp.mean(v * jnp.roll(v, 1, axis=2), axis=(1, 2, 3)))
      total = total + jnp.square(jnp.mean(v * jnp.roll(v, 1, axis=1), axis=(1, 2, 3)))
      if v.shape[1] <= 8:
        break
      n, h, w, c = v.shape
      v = v.reshape(n, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))
  return total


def normalize_noise(noise: list[Array]) -> list[Array]:
  """Each map (per image) shifted to zero mean and scaled to unit variance."""
  out = []
  for v in noise:
    v = v - jnp.mean(v, axis=(1, 2, 3), keepdims=True)
    out.append(v * jax.lax.rsqrt(jnp.mean(jnp.square(v), axis=(1, 2, 3), keepdims=True)))
  return out


def psnr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """Per-image PSNR in dB of images in [-1, 1] (clipped), peak = the range 2."""
  x, y = np.clip(x, -1, 1), np.clip(y, -1, 1)
  mse = np.mean(np.square(x - y, dtype=np.float64), axis=(1, 2, 3))
  return 10 * np.log10(4.0 / np.maximum(mse, 1e-12))


# ------------------------------------------------------------------------- distances


def available_losses(model) -> tuple[str, ...]:
  """The losses ``model`` can be projected with, best first: LPIPS when its converted weights are
  installed (the official projector's distance), the critic of the model's own discriminator
  when the checkpoint has one (perceptual enough to find the layout, and needs no download),
  pixel mse always. ``--loss auto`` and the studio take the first; the studio offers them all."""
  from jaxspatial.nets import weights
  lpips = ("lpips",) if weights.converted_path("lpips-vgg").is_file() else ()
  critic = ("critic",) if getattr(model, "d_vars", None) is not None else ()
  return (*lpips, *critic, "mse")


def resolve_loss(model, loss: str = "auto") -> tuple[str, str | None]:
  """``(loss, notice)``: ``"auto"`` becomes the first of :func:`available_losses`; the notice (one
  line, None when LPIPS is used or a loss was named) says what was chosen instead of LPIPS and
  how to install it."""
  if loss != "auto":
    return loss, None
  chosen = available_losses(model)[0]
  if chosen == "lpips":
    return chosen, None
  from jaxspatial.nets import weights
  instead = ("the critic of the checkpoint's own discriminator" if chosen == "critic"
             else "pixel mse (the checkpoint has no discriminator for --loss critic)")
  return chosen, (f"note: no LPIPS weights installed, so projecting with {instead}; for LPIPS, "
                  f"{weights.how_to_get('lpips-vgg')}")


def make_distance(model, loss: str) -> tuple[Callable, Callable, Any]:
  """``(prepare(params, target) -> t, distance(params, image, t) -> (n,), params)`` for ``loss``.

  ``params`` (LPIPS weights or D variables) are passed into the jitted step rather than baked
  in; ``prepare`` computes the target's side once. LPIPS needs the converted ``lpips-vgg``
  weights (UserError naming the file otherwise); images above 256 px are area-pooled to 256
  first, as the official projector does; ``critic`` needs the checkpoint's discriminator.
  """
  if loss == "mse":
    return (lambda p, x: x), (lambda p, y, x: jnp.mean(jnp.square(y - x), axis=(1, 2, 3))), None
  if loss == "lpips":
    from jaxspatial.losses import regressor as regression
    from jaxspatial.nets import weights
    try:
      params = weights.load_params("lpips-vgg")
    except UserError as e:
      raise UserError(f"{e} (or project with --loss critic or --loss mse)") from None
    size = 256 if model.resolution > 256 else 0
    return (lambda p, x: x), (lambda p, y, x: regression.make_lpips_fn(p, "vgg", size)(y, x)), params
  if loss == "critic":
    from jaxspatial.nets import critic
    if getattr(model, "d_vars", None) is None:
      raise UserError("--loss critic needs a checkpoint with a discriminator ('d'); use "
                      "--loss lpips or --loss mse")
    d = model.discriminator
    prepare = lambda p, x: critic.feature_maps(d, p, x)
    return prepare, (lambda p, y, t: critic.feature_distance(critic.feature_maps(d, p, y), t)), \
        model.d_vars
  raise UserError(f"loss must be one of {'|'.join(LOSSES)}, got {loss!r}")


# ------------------------------------------------------------------------- families


class _Space:
  """What a projection of ``model`` in ``space`` optimises and how it becomes an image: the
  model's hooks (pure functions of ``g_vars``), broadcast over the layers."""

  def __init__(self, model, space: str):
    spaces = getattr(model, "projection_spaces", ())
    if not spaces:
      raise UserError(f"projection works on {', '.join(projectable_kinds())} models, not "
                      f"{model.kind!r}")
    if space not in spaces:
      raise UserError(f"a {model.kind} model is projected in space {'|'.join(spaces)}, "
                      f"not {space!r}")
    self.model, self.space = model, space
    self.num_ws = model.num_ws

  def sample_w(self, g_vars, key: Array, n: int) -> Array:
    """(n, *w) mapped from fresh z (SSN: one block's MLP output)."""
    return self.model.sample_w(g_vars, key, n)

  def sample_ws(self, g_vars, key: Array, n: int) -> Array:
    """W+ of ``n`` fresh latents (SSN: a whole block grid, encoded)."""
    return self._layers(self.model.sample_styles(g_vars, key, n))

  def start(self, g_vars, w_avg: Array, n: int) -> Array:
    """The start latent for ``n`` images: ``w̄`` (broadcast to ``style_shape``) in this space."""
    lat = jnp.broadcast_to(w_avg, (n, *self.model.style_shape))
    return lat if self.space == "w" else self.expand(g_vars, lat)

  def expand(self, g_vars, latent: Array) -> Array:
    """A ``w``-space latent -> W+ (the model's ``w_to_style``, then every layer)."""
    return self._layers(self.model.w_to_style(g_vars, latent))

  def _layers(self, style: Array) -> Array:
    return jnp.broadcast_to(style[:, None], (style.shape[0], self.num_ws) + style.shape[1:])

  def ws(self, g_vars, latent: Array) -> Array:
    return self.expand(g_vars, latent) if self.space == "w" else latent

  def render(self, g_vars, ws: Array, controls, noise) -> Array:
    return self.model.synthesis(g_vars, ws, controls, noise)

  def controls(self, params: dict, base):
    """The controls (SpatialGAN: heatmaps) with the optimised arrays of ``params``."""
    return None if base is None else self.model.with_control_params(base, params)


def w_statistics(model, num_samples: int, seed: int = 123) -> tuple[np.ndarray, float]:
  """(``w̄`` (*per-layer latent shape), ``σ_w``) from ``num_samples`` mapped latents."""
  fam = _Space(model, "w")
  sample = jax.jit(lambda v, k: fam.sample_w(v, k, min(num_samples, 1000)))
  key = jax.random.key(seed)
  ws = np.concatenate([np.asarray(sample(model.g_vars, jax.random.fold_in(key, i)))
                       for i in range(-(-num_samples // 1000))])[:num_samples]
  ws = ws.astype(np.float64)
  w_avg = ws.mean(axis=0)
  return w_avg.astype(np.float32), float(np.sqrt(np.sum((ws - w_avg) ** 2) / len(ws)))


def _images(model, image) -> np.ndarray:
  x = np.asarray(image, np.float32)
  x = x[None] if x.ndim == 3 else x
  r = model.resolution
  if x.ndim != 4 or x.shape[1:] != (r, r, 3):
    raise UserError(f"images have shape {x.shape}; this generator makes (n, {r}, {r}, 3)")
  return x


class _Compiled:
  """The jitted functions of one (model, space, loss, config) combination, cached on the model
  so that projecting many images compiles the step once."""

  def __init__(self, model, cfg: ProjectionConfig):
    self.fam = fam = _Space(model, cfg.space)
    self.prepare, distance, self.loss_params = make_distance(model, cfg.loss)
    self.distance_fn = distance
    self.w_avg, self.w_std = w_statistics(model, cfg.w_avg_samples)
    self.adam = optax.scale_by_adam(b1=0.9, b2=0.999)
    adam = self.adam

    def lr_scale(name: str) -> float:   # the family's controls (heatmaps) move slower
      return 1.0 if name in ("latent", "noise") else cfg.heatmap_lr_ratio

    def image(v, params, base, latent=None):
      latent = params["latent"] if latent is None else latent
      return fam.render(v, fam.ws(v, latent), fam.controls(params, base), params.get("noise"))

    def loss_fn(params, t, key, v, loss_params, target, base, w_std):
      latent = params["latent"]
      # One draw shared by the batch, so that an image's result does not depend on its batch.
      latent = latent + latent_noise_scale(t, w_std, cfg) * jax.random.normal(key, latent.shape[1:])
      dist = distance(loss_params, image(v, params, base, latent), target)
      noise = params.get("noise")
      total = dist if noise is None else dist + cfg.noise_reg_weight * noise_regularizer(noise)
      return jnp.sum(total), dist

    def step(params, opt_state, i, num_steps, key, v, loss_params, target, base, w_std):
      """One Adam step; every argument is traced (the schedule comes from ``i / num_steps``;
      ``σ_w`` too, so models of one architecture share the compiled program)."""
      t = i.astype(jnp.float32) / jnp.maximum(num_steps, 1).astype(jnp.float32)
      grads, dist = jax.grad(loss_fn, has_aux=True)(params, t, jax.random.fold_in(key, i), v,
                                                    loss_params, target, base, w_std)
      updates, opt_state = adam.update(grads, opt_state)
      lr = learning_rate(t, cfg)
      params = {k: jax.tree.map(lambda p, u: p - lr * lr_scale(k) * u, val, updates[k])
                for k, val in params.items()}
      if "noise" in params:
        params["noise"] = normalize_noise(params["noise"])
      return params, opt_state, dist

    self.step = model.jit(step)
    self.image = model.jit(image)
    self.distance = model.jit(lambda v, lp, params, target, base: distance(
        lp, image(v, params, base), target))
    self.prepare_target = model.jit(self.prepare)
    self.ws = model.jit(fam.ws)


def compiled(model, cfg: ProjectionConfig) -> _Compiled:
  """The cached :class:`_Compiled` for ``model`` and ``cfg`` (steps, seed, snapshots aside;
  loss ``auto`` resolved, :func:`resolve_loss`)."""
  cfg = dataclasses.replace(cfg, loss=resolve_loss(model, cfg.loss)[0])
  key = dataclasses.replace(cfg, steps=0, seed=0, snapshots=0)
  return model.cached(("projection", key), lambda: _Compiled(model, cfg))


def project(model, image, *, steps: int | None = None, space: str | None = None,
            loss: str | None = None, init_ws: np.ndarray | None = None,
            init_heatmaps: Heatmaps | None = None, seed: int | None = None,
            config: ProjectionConfig | None = None,
            callback: Callable[[int], None] | None = None,
            on_snapshot: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
            stop: Callable[[], bool] | None = None) -> Projection:
  """Projects ``image`` (H, W, 3) or (n, H, W, 3) in [-1, 1] into ``model`` (module docstring).

  Args:
    model: a loaded model with ``projection_spaces`` (``js.load``: stylegan2, ssn, spatialgan).
    steps, space, loss, seed: override ``config``'s (``ProjectionConfig`` defaults otherwise).
    init_ws: optional start W+ (n, num_ws, *style_shape), e.g. a regressor's prediction
      (``RegressorModel.invert``); in ``space="w"`` the model's ``w_from_styles`` (the mean over
      layers) is the start ``w``.
    init_heatmaps: the start controls of a family that has them (SpatialGAN: heatmaps; default
      ``model.edit_controls(None, n, seed)``, i.e. ``sample_heatmaps(seed, n)``).
    callback: called with the step index after every step (progress bars).
    on_snapshot: called as ``(step, images, loss)`` at each of ``config.snapshots`` steps after
      the first (the projection so far and each image's distance at that step; live previews).
    stop: polled before every step; True ends the projection there (``Projection.steps`` says
      how many were taken; the schedule stays that of ``steps``).
  """
  cfg = config or ProjectionConfig()
  cfg = dataclasses.replace(cfg, **{k: v for k, v in dict(steps=steps, space=space, loss=loss,
                                                          seed=seed).items() if v is not None})
  cfg.validate()
  x = _images(model, image)
  n = len(x)
  started = time.perf_counter()
  c = compiled(model, cfg)
  g_vars = model.g_vars
  params: dict[str, Any] = {"latent": c.fam.start(g_vars, jnp.asarray(c.w_avg), n)}
  if init_ws is not None:
    init_ws = model.check_ws(init_ws, n, "init_ws")
    params["latent"] = jnp.asarray(model.w_from_styles(init_ws) if cfg.space == "w" else init_ws)
  const_noise = [jnp.broadcast_to(jnp.asarray(b), (n,) + b.shape[1:])
                 for b in model.noise_maps("const")]
  if cfg.optimize_noise:
    params["noise"] = const_noise
  base = model.edit_controls(init_heatmaps, n, seed=cfg.seed)
  if base is not None:
    base = jax.tree.map(jnp.asarray, base)
    params.update(model.control_params(base, "project"))
  target = c.prepare_target(c.loss_params, jnp.asarray(x))
  opt_state = c.adam.init(params)
  key, num_steps, w_std = jax.random.key(cfg.seed), jnp.int32(cfg.steps), jnp.float32(c.w_std)
  keep = (set(np.linspace(0, cfg.steps, cfg.snapshots).round().astype(int).tolist())
          if cfg.snapshots else set())
  snapshots = [(0, np.asarray(c.image(g_vars, params, base)))] if 0 in keep else []
  taken = 0
  while taken < cfg.steps and not (stop is not None and stop()):
    params, opt_state, dist = c.step(params, opt_state, jnp.int32(taken), num_steps, key,
                                     g_vars, c.loss_params, target, base, w_std)
    taken += 1
    if taken in keep:
      snapshots.append((taken, np.asarray(c.image(g_vars, params, base))))
      if on_snapshot is not None:
        on_snapshot(taken, snapshots[-1][1], np.asarray(dist))
    if callback is not None:
      callback(taken - 1)
  out = np.asarray(c.image(g_vars, params, base))
  return Projection(
      kind=model.kind, space=cfg.space, latent=np.asarray(params["latent"]),
      ws=np.asarray(c.ws(g_vars, params["latent"])),
      noise=[np.asarray(m) for m in params.get("noise", const_noise)],
      heatmaps=None if base is None else jax.tree.map(np.asarray, c.fam.controls(params, base)),
      image=out, target=x, loss=np.asarray(c.distance(g_vars, c.loss_params, params, target, base)),
      psnr=psnr(out, x), steps=taken, seconds=time.perf_counter() - started,
      snapshots=snapshots)


def resampled_projection(model, projection: Projection, blocks, seed: int) -> Projection:
  """``projection`` (each image of its batch) with latent ``blocks`` ``(row, col)`` redrawn from
  ``seed`` by the model's ``resample_latent`` (SSN: a ``w``-space projection re-encodes its
  pre-encoder grid, a ``wplus`` one replaces the blocks of every layer,
  :meth:`jaxspatial.api.ssn.SSNModel.resample_latent`): ``latent`` and ``ws`` replaced, the noise
  maps kept. The result resamples again."""
  if getattr(model, "resample_latent", None) is None or projection.kind != model.kind:
    raise UserError(f"block resampling needs a model with a latent block grid (ssn) and a "
                    f"projection into it; this is a {model.kind} model and a "
                    f"{projection.kind} projection")
  latent, ws = model.resample_latent(projection.latent, projection.ws, projection.space,
                                     blocks, seed)
  return dataclasses.replace(projection, latent=latent, ws=ws, image=None, loss=None, psnr=None,
                             snapshots=[])


def resampled_ws(model, projection: Projection, blocks, seed: int) -> np.ndarray:
  """The W+ of :func:`resampled_projection` (what ``synthesize`` takes)."""
  return resampled_projection(model, projection, blocks, seed).ws
