"""Point dragging: DragGAN (Pan et al., SIGGRAPH 2023) and its synergy with SpatialGAN.

The user picks handle points ``p_i`` and targets ``t_i`` on a generated image. Each iteration:

1. one synthesis pass gives the image and the feature map ``F`` of a synthesis block (DragGAN:
   the 6th block, 0-indexed 5; smaller generators use their last), upsampled bilinearly to
   the image size;
2. **point tracking** (DragGAN eq. 2): each handle moves to the pixel of the ``(2 r2 + 1)²``
   window around it whose feature is nearest (L1) to the handle's feature in the *first*
   image, ``f_i = F_0(p_i^0)``;
3. stop when every handle is within ``max(2 h / 512, 2)`` px of its target;
4. **motion supervision** (DragGAN eq. 1): with ``d_i = (t_i - p_i) / |t_i - p_i|``,
   ``L = Σ_i mean_{q ∈ Ω1(p_i, r1)} |sg(F(q)) - F(q + d_i)|_1`` (bilinear sampling at the
   shifted points), plus ``λ |(F - F_0) ⊙ (1 - M)|_1`` when a mask ``M`` of the editable
   region is given; one Adam step on the first ``num_layers`` W+ rows (and, for SpatialGAN,
   the heatmap centres).

Radii scale with the image side ``h``: ``r1 = 3 h / 512``, ``r2 = 12 h / 512`` (Ω1 always holds
the handle itself; r2 is at least one pixel).

**SpatialGAN synergy** (TPAMI 2024, §3.4, eq. 6): before optimising, every root heatmap centre
within ``coarse_radius`` of a handle moves by ``α (t - p)`` (with its finer-level children) --
the optimisation-free coarse move -- and then the centres are optimised together with the
latent, alternately as the paper does ("in one iteration, we focused on modifying the latent
code ..., followed by adjusting the heatmap centers in the subsequent iteration", §5 with
Fig. 12): even steps update the W+ rows, odd steps the centres (``alternate=False``: both
every step). The paper gives neither ``α`` nor the radius nor a learning rate for the
centres; ours are ``DragConfig.coarse_alpha = 1``, ``coarse_radius = 0.3`` (heatmap units,
[-1, 1]) and ``center_lr = 0.01``.

What differs per family is the model's (its ``js.load`` class): ``draggable``, ``synthesis``
(the image and block features, with the family's controls), ``edit_controls``,
``drag_controls`` (SpatialGAN's coarse move) and ``control_params`` / ``with_control_params``
(the centres optimised with the latent); nothing here branches on ``model.kind``.

Points are ``(row, col)`` in pixels of the generator's output. :func:`drag` runs a drag to
the end; :class:`Dragger` keeps the compiled step of a model and advances a drag one iteration
at a time (:class:`DragRun`), which the studio streams to the browser.

"Converged" only says that the *tracked* point reached the target. On a nearly uniform region
(sky, ground) tracking follows nothing and the image may not change at all; on an object the
generator may stretch or recolour it instead of moving it. :func:`report` therefore measures,
per handle, what happened to the pixels: how far the patch under the handle moved (the best
match of its patch in the new image), how much the image changed along the drag, and whether
the handle's neighbourhood was nearly uniform to begin with.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxspatial import families
from jaxspatial.api.spatialgan import coarse_move  # noqa: F401 -- eq. 6, named here with DragGAN
from jaxspatial.errors import UserError
from jaxspatial.models.heatmaps import Heatmaps

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class DragConfig:
  """DragGAN's settings (paper defaults) and the SpatialGAN synergy's (ours, see module doc)."""
  max_steps: int = 200
  lr: float = 1e-3                # Adam on the optimised W+ rows
  num_layers: int = 6             # W+ rows optimised: the first 6
  w_space: bool = False           # True: one w shared by all layers (DragGAN's "w" space)
  feature_block: int = 5          # the 6th synthesis block (clamped to the generator's last)
  mask_weight: float = 10.0       # λ of the mask term (DragGAN's official value)
  center_lr: float = 0.01         # Adam on the heatmap centres (SpatialGAN)
  alternate: bool = True          # centres and latent on alternate steps (§5, Fig. 12)
  coarse_alpha: float = 1.0       # eq. 6
  coarse_radius: float = 0.3      # heatmap units ([-1, 1])


@dataclasses.dataclass
class DragResult:
  """``ws`` and ``heatmaps`` (None for StyleGAN2) after dragging; ``image`` (H, W, 3) from
  them; ``handles`` (P, 2) where the handles were tracked to; ``path`` the handles after
  each iteration; ``steps`` Adam steps taken; ``converged`` whether all handles reached."""
  ws: np.ndarray
  heatmaps: Heatmaps | None
  image: np.ndarray
  handles: np.ndarray
  path: list[np.ndarray]
  steps: int
  converged: bool


UNIFORM_CONTRAST = 0.02   # std (in [0, 1] units) of the handle's neighbourhood below: uniform
UNCHANGED = 0.01          # mean |after - before| ([0, 1] units) along the drag below: unchanged
_MATCH_SIZE = 64          # images are area-downscaled to at most this side for patch matching


@dataclasses.dataclass(frozen=True)
class HandleReport:
  """What a drag did around one handle, in pixels of the image and [0, 1] intensity units.

  ``asked``: |target - start|; ``tracked``: |tracked end - start|, the point tracking's view;
  ``content``: how far the content under the handle moved, the displacement that best matches
  the handle's patch of the old image in the new one (ties: the smallest; meaningless on a
  uniform patch, which matches any flat region);
  ``match_error``: that best match's mean abs difference (high: the patch changed, say was
  recoloured, rather than moved); ``change``: mean |after - before| within ``radius`` of the
  segment start -> target; ``contrast``: std of the old image within ``radius`` of the start;
  ``uniform``: contrast below :data:`UNIFORM_CONTRAST`; ``unchanged``: change below
  :data:`UNCHANGED`."""
  asked: float
  tracked: float
  content: float
  match_error: float
  change: float
  contrast: float
  radius: float
  uniform: bool
  unchanged: bool


def neighbourhood_radius(size: int) -> float:
  """The radius (px) around a handle that :func:`report` looks at: 1/8 of the image side, at
  least 2 px (4 px at 32, 64 px at 512). Tracking compares generator features whose receptive
  field spans several pixels, so a handle a few pixels from an edge still has something to
  follow; a handle with nothing but one flat colour this far around it has not."""
  return max(2.0, size / 8)


def _area_downscale(image: np.ndarray, factor: int) -> np.ndarray:
  h, w, c = image.shape
  return image.reshape(h // factor, factor, w // factor, factor, c).mean(axis=(1, 3))


def _best_shift(before: np.ndarray, after: np.ndarray, centre: np.ndarray, radius: int,
                reach: int) -> tuple[np.ndarray, float]:
  """(offset (2,), mean abs error) of the shift within ``reach`` px that best moves the square
  patch of ``before`` around ``centre`` onto ``after``; ties go to the smallest offset."""
  size = before.shape[0]
  pad = radius + reach
  padded = np.pad(after, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
  cy, cx = (int(v) for v in np.clip(np.round(centre), 0, size - 1))
  src = np.pad(before, ((radius, radius), (radius, radius), (0, 0)), mode="edge")
  patch = src[cy:cy + 2 * radius + 1, cx:cx + 2 * radius + 1]
  dy, dx = np.mgrid[-reach:reach + 1, -reach:reach + 1]
  offsets = np.stack([dy.ravel(), dx.ravel()], -1)
  offsets = offsets[np.argsort(np.hypot(offsets[:, 0], offsets[:, 1]), kind="stable")]
  errors = [np.abs(padded[cy + pad + oy - radius:cy + pad + oy + radius + 1,
                          cx + pad + ox - radius:cx + pad + ox + radius + 1] - patch).mean()
            for oy, ox in offsets]
  best = int(np.argmin(errors))
  return offsets[best].astype(np.float64), float(errors[best])


def report(before: np.ndarray, after: np.ndarray, handles: Any, targets: Any,
           tracked: Any) -> list[HandleReport]:
  """One :class:`HandleReport` per handle of a drag from image ``before`` to ``after``
  ((H, W, 3) in [-1, 1]); ``handles``/``targets``/``tracked`` (P, 2) ``(row, col)`` pixels:
  the starts, the targets and where tracking ended."""
  before = (np.asarray(before, np.float64) + 1) / 2
  after = (np.asarray(after, np.float64) + 1) / 2
  size = before.shape[0]
  radius = neighbourhood_radius(size)
  factor = 1
  while size // factor > _MATCH_SIZE and size % (2 * factor) == 0:
    factor *= 2
  small_before, small_after = _area_downscale(before, factor), _area_downscale(after, factor)
  rows, cols = np.mgrid[0:size, 0:size]
  grid = np.stack([rows, cols], -1).astype(np.float64)
  out = []
  for start, target, end in zip(np.asarray(handles, np.float64), np.asarray(targets, np.float64),
                                np.asarray(tracked, np.float64)):
    asked = float(np.linalg.norm(target - start))
    near_start = np.linalg.norm(grid - start, axis=-1) <= radius
    contrast = float(before.mean(-1)[near_start].std())
    seg = target - start
    t = np.clip(((grid - start) @ seg) / max(asked ** 2, 1e-9), 0, 1)[..., None]
    along = np.linalg.norm(grid - (start + t * seg), axis=-1) <= radius
    change = float(np.abs(after - before).mean(-1)[along].mean())
    shift, error = _best_shift(small_before, small_after, start / factor,
                               max(1, int(round(radius / factor))),
                               int(np.ceil((asked + radius) / factor)))
    out.append(HandleReport(asked=asked, tracked=float(np.linalg.norm(end - start)),
                            content=float(np.linalg.norm(shift)) * factor, match_error=error,
                            change=change, contrast=contrast, radius=radius,
                            uniform=contrast < UNIFORM_CONTRAST, unchanged=change < UNCHANGED))
  return out


def radii(size: int) -> tuple[float, float, float]:
  """(r1, r2, stop distance) in pixels for an image side of ``size``."""
  return 3 * size / 512, max(12 * size / 512, 1.0), max(2 * size / 512, 2.0)


def disk_offsets(radius: float) -> np.ndarray:
  """Integer offsets ``(dy, dx)`` with ``dy² + dx² <= radius²`` (always holds (0, 0)): (Q, 2)."""
  r = int(math.floor(radius))
  dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
  keep = dy ** 2 + dx ** 2 <= radius ** 2
  return np.stack([dy[keep], dx[keep]], -1).astype(np.float32)


def bilinear_sample(feat: Array, points: Array) -> Array:
  """``feat`` (H, W, C) at real-valued ``points`` (..., 2) ``(row, col)``, bilinear, border
  clamped -> (..., C)."""
  h, w, _ = feat.shape
  y = jnp.clip(points[..., 0], 0, h - 1)
  x = jnp.clip(points[..., 1], 0, w - 1)
  y0 = jnp.clip(jnp.floor(y), 0, h - 2).astype(jnp.int32)
  x0 = jnp.clip(jnp.floor(x), 0, w - 2).astype(jnp.int32)
  wy, wx = (y - y0)[..., None], (x - x0)[..., None]
  top = feat[y0, x0] * (1 - wx) + feat[y0, x0 + 1] * wx
  bottom = feat[y0 + 1, x0] * (1 - wx) + feat[y0 + 1, x0 + 1] * wx
  return top * (1 - wy) + bottom * wy


def motion_supervision_loss(feat: Array, handles: Array, targets: Array,
                            offsets: Array, valid: Array | None = None) -> Array:
  """DragGAN eq. 1 without the mask term: ``feat`` (H, W, C), ``handles``/``targets``
  (P, 2), ``offsets`` (Q, 2) from :func:`disk_offsets` -> scalar. ``valid`` (P,) bool drops
  padding points from the sum (a zero-length drag still has a gradient: |x|' = 1 at 0)."""
  direction = targets - handles
  direction = direction / jnp.maximum(jnp.linalg.norm(direction, axis=-1, keepdims=True), 1e-8)
  q = handles[:, None, :] + offsets[None]                               # (P, Q, 2)
  here = jax.lax.stop_gradient(bilinear_sample(feat, q))
  ahead = bilinear_sample(feat, q + direction[:, None, :])
  per_point = jnp.mean(jnp.abs(here - ahead), axis=(1, 2))
  return jnp.sum(per_point if valid is None else jnp.where(valid, per_point, 0.0))


def track_points(feat: Array, reference: Array, handles: Array, r2: float) -> Array:
  """DragGAN eq. 2: each handle (P, 2) -> the pixel of the ``(2⌊r2⌋ + 1)²`` window around its
  rounded position whose feature in ``feat`` (H, W, C) is nearest (L1) to ``reference``
  (P, C)."""
  h, w, _ = feat.shape
  r = int(math.floor(r2))
  dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
  window = jnp.asarray(np.stack([dy.ravel(), dx.ravel()], -1))         # (S, 2)
  centre = jnp.round(handles).astype(jnp.int32)
  cand = centre[:, None, :] + window[None]                              # (P, S, 2)
  cand = jnp.stack([jnp.clip(cand[..., 0], 0, h - 1), jnp.clip(cand[..., 1], 0, w - 1)], -1)
  dist = jnp.sum(jnp.abs(feat[cand[..., 0], cand[..., 1]] - reference[:, None]), axis=-1)
  return jnp.take_along_axis(cand, jnp.argmin(dist, axis=1)[:, None, None], axis=1)[:, 0]


def check_points(a: Any, name: str, size: int) -> np.ndarray:
  """``(n, 2)`` float32 (row, col) points inside a ``size`` x ``size`` image, else UserError."""
  a = np.asarray(a, np.float32).reshape(-1, 2) if np.size(a) else np.zeros((0, 2), np.float32)
  if not len(a):
    raise UserError(f"give at least one {name} point")
  if ((a < 0) | (a > size - 1)).any():
    raise UserError(f"{name} points must lie in the {size}x{size} image, got {a.tolist()}")
  return a


class Dragger:
  """DragGAN on one model, one step at a time (for streaming), compiled once.

  The jitted step and render take the generator variables and every per-drag array as
  arguments, and the points are padded to ``max_points`` (padding points sit still on
  their own targets), so one compiled program serves every drag of this model with up to
  ``max_points`` pairs; a SpatialGAN compiles one more program when the centres are not
  optimised. :meth:`start` begins a drag, :class:`DragRun` advances it.
  """

  def __init__(self, model, config: DragConfig = DragConfig(), max_points: int = 8):
    if not getattr(model, "draggable", False):
      kinds = families.kinds_with(lambda f: getattr(families.resolve(f.model), "draggable", False))
      raise UserError(f"dragging works on {' and '.join(kinds)} models, not {model.kind!r}")
    self.model, self.config, self.max_points = model, config, int(max_points)
    size = model.resolution
    self.r1, self.r2, self.stop = radii(size)
    self.n_opt = 1 if config.w_space else min(config.num_layers, model.num_ws)
    self.block = min(config.feature_block, int(round(math.log2(size))) - 2)
    self.optimizers = {"ws": optax.adam(config.lr)}
    self.control_optimizer = optax.adam(config.center_lr)   # the family's controls (centres)
    self._offsets = jnp.asarray(disk_offsets(self.r1))
    self._features = jax.jit(lambda g_vars, params, fixed: self._synthesis(g_vars, params,
                                                                           fixed)[1])
    self._step = jax.jit(self._step_fn)
    self._render = jax.jit(self._tracked)

  def _synthesis(self, g_vars, params, fixed):
    """(image (H, W, 3), block features upsampled to (H, W, C)) for the optimised ``params``."""
    model, size = self.model, self.model.resolution
    full = self._full_ws(params, fixed)
    controls = fixed.get("controls")
    if controls is not None:
      controls = model.with_control_params(controls, params)
    img, feats = model.synthesis(g_vars, full, controls, fixed.get("noise"), True)
    f = feats[self.block][0]
    return img[0], jax.image.resize(f, (size, size, f.shape[-1]), "bilinear")

  def _full_ws(self, params, fixed):
    """W+ from the optimised rows: the first rows + the fixed rest, or one w tiled (w_space)."""
    xp = jnp if isinstance(params["ws"], jax.Array) else np
    if self.config.w_space:
      return xp.repeat(params["ws"], self.model.num_ws, axis=1)
    return xp.concatenate([params["ws"], fixed["ws_rest"]], axis=1)

  def _tracked(self, g_vars, params, p, fixed):
    """Image, features, handles tracked on them (padding points kept), all arrived?"""
    img, f = self._synthesis(g_vars, params, fixed)
    new_p = track_points(jax.lax.stop_gradient(f), fixed["f_handles"], p, self.r2)
    new_p = jnp.where(fixed["valid"][:, None], new_p.astype(jnp.float32), p)
    near = jnp.linalg.norm(new_p - fixed["targets"], axis=-1) <= self.stop
    return img, f, new_p, jnp.all(near | ~fixed["valid"])

  def _step_fn(self, g_vars, params, opt_state, p, fixed, step):
    """Track, then (unless every handle has arrived) one motion-supervision Adam step: of
    the W+ rows on even ``step``s and of the centres on odd ones when both are optimised
    and ``config.alternate``, else of everything."""
    def loss_fn(params):
      img, f, new_p, done = self._tracked(g_vars, params, p, fixed)
      loss = motion_supervision_loss(f, new_p, fixed["targets"], self._offsets, fixed["valid"])
      loss = loss + self.config.mask_weight * jnp.mean(jnp.abs(f - fixed["feat0"]) * fixed["keep"])
      return loss, (img, new_p, done)
    (_, (img, new_p, done)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    alternate = self.config.alternate and len(params) > 1
    new_params, new_state = {}, {}
    for k in params:
      updates, state = self._optimizer(k).update(grads[k], opt_state[k], params[k])
      turn = step % 2 == (0 if k == "ws" else 1)
      move = ~done & (turn if alternate else True)
      new_params[k] = jax.tree.map(lambda a, u: jnp.where(move, a + u, a), params[k], updates)
      new_state[k] = jax.tree.map(lambda new, old: jnp.where(move, new, old), state,
                                  opt_state[k])
    return new_params, new_state, new_p, done, img

  def _optimizer(self, name: str) -> optax.GradientTransformation:
    return self.optimizers.get(name, self.control_optimizer)

  def start(self, ws: np.ndarray, handles: Any, targets: Any, *,
            heatmaps: Heatmaps | None = None, mask: np.ndarray | None = None,
            coarse: bool = True, optimise_centers: bool = True,
            noise: list[np.ndarray] | None = None) -> "DragRun":
    """A drag of ``handles`` to ``targets`` on ``model.synthesize(ws, ...)`` (arguments as
    :func:`drag`)."""
    model, size = self.model, self.model.resolution
    controls = model.edit_controls(heatmaps, 1)   # SpatialGAN: UserError without them
    handles, targets = check_points(handles, "handle", size), check_points(targets, "target", size)
    if handles.shape != targets.shape:
      raise UserError(f"{len(handles)} handle(s) but {len(targets)} target(s)")
    if len(handles) > self.max_points:
      raise UserError(f"at most {self.max_points} handle/target pairs, got {len(handles)}")
    ws = np.asarray(ws, np.float32)
    if ws.shape[0] != 1 or ws.shape[1] != model.num_ws:
      raise UserError(f"ws must be W+ of one image, (1, {model.num_ws}, ...); got {ws.shape}")
    if self.config.w_space and not np.allclose(ws, ws[:, :1]):
      raise UserError("a drag in W needs the same w in every layer; this latent is W+ "
                      "(drag in W+, or start from a fresh latent)")
    keep = np.zeros((size, size, 1), np.float32)
    if mask is not None:
      mask = np.asarray(mask, np.float32)
      if mask.size != size * size:
        raise UserError(f"the mask must be {size}x{size}, got shape {mask.shape}")
      keep = 1.0 - mask.reshape(size, size, 1)
    fixed = {"ws_rest": jnp.asarray(ws[:, self.n_opt:]), "keep": jnp.asarray(keep)}
    if noise is not None:
      fixed["noise"] = [jnp.asarray(m) for m in model.check_noise_maps(noise, 1)]
    params = {"ws": jnp.asarray(ws[:, :self.n_opt])}
    if controls is not None:
      if coarse:
        controls = model.drag_controls(controls, handles, targets, self.config.coarse_alpha,
                                       self.config.coarse_radius)
      controls = jax.tree.map(jnp.asarray, controls)
      fixed["controls"] = controls
      if optimise_centers:
        params.update(model.control_params(controls, "drag"))
    pad = self.max_points - len(handles)
    p = np.concatenate([handles, np.zeros((pad, 2), np.float32)])
    fixed["targets"] = jnp.asarray(np.concatenate([targets, np.zeros((pad, 2), np.float32)]))
    fixed["valid"] = jnp.asarray(np.arange(self.max_points) < len(handles))
    feat0 = self._features(model.g_vars, params, fixed)
    fixed["feat0"] = feat0
    fixed["f_handles"] = bilinear_sample(feat0, jnp.asarray(p))
    opt_state = {k: self._optimizer(k).init(v) for k, v in params.items()}
    return DragRun(self, params, opt_state, jnp.asarray(p), fixed, len(handles))


@dataclasses.dataclass
class DragStep:
  """One streamed iteration: ``image`` (H, W, 3) on which ``handles`` (P, 2) were tracked;
  ``step`` Adam steps taken so far; ``done`` whether every handle has arrived."""
  step: int
  image: np.ndarray
  handles: np.ndarray
  done: bool


class DragRun:
  """A drag in progress (from :meth:`Dragger.start`): :meth:`step` tracks the handles and
  takes one Adam step; :meth:`result` renders where the drag has got to."""

  def __init__(self, dragger: Dragger, params, opt_state, p, fixed, num_points: int):
    self.dragger, self.params, self.opt_state = dragger, params, opt_state
    self.p, self.fixed, self.num_points = p, fixed, num_points
    self.steps, self.done = 0, False

  def step(self) -> DragStep:
    """Tracks the handles on the current image; unless all have arrived, one Adam step."""
    d = self.dragger
    self.params, self.opt_state, self.p, done, img = d._step(
        d.model.g_vars, self.params, self.opt_state, self.p, self.fixed,
        jnp.int32(self.steps))
    self.done = bool(done)
    if not self.done:
      self.steps += 1
    return DragStep(self.steps, np.asarray(img), self.handles, self.done)

  @property
  def handles(self) -> np.ndarray:
    return np.asarray(self.p)[:self.num_points]

  def result(self, path: list[np.ndarray] | None = None) -> DragResult:
    """Renders the current latent and tracks the handles on it once more."""
    d = self.dragger
    image, _, self.p, done = d._render(d.model.g_vars, self.params, self.p, self.fixed)
    ws = d._full_ws({"ws": np.asarray(self.params["ws"])},
                    {"ws_rest": np.asarray(self.fixed["ws_rest"])})
    heatmaps = self.fixed.get("controls")
    if heatmaps is not None:
      heatmaps = jax.tree.map(np.asarray, d.model.with_control_params(heatmaps, self.params))
    return DragResult(ws=ws, heatmaps=heatmaps, image=np.asarray(image), handles=self.handles,
                      path=[*(path or []), self.handles], steps=self.steps,
                      converged=bool(done))


def drag(model, ws: np.ndarray, handles: Any, targets: Any, *,
         heatmaps: Heatmaps | None = None, mask: np.ndarray | None = None,
         config: DragConfig = DragConfig(), coarse: bool = True,
         optimise_centers: bool = True, noise: list[np.ndarray] | None = None,
         callback: Callable[[int, np.ndarray], None] | None = None) -> DragResult:
  """Drags ``handles`` to ``targets`` on the image ``model.synthesize(ws, ...)``.

  Args:
    model: a loaded StyleGAN2 or SpatialGAN model (``js.load``).
    ws: W+ of one image, (1, num_ws, w_dim) (indoor SpatialGAN: (1, num_ws, 1 + K, w_dim)).
    handles, targets: (P, 2) ``(row, col)`` pixels.
    heatmaps: SpatialGAN only: the image's heatmaps (one sample).
    mask: optional (H, W) or (1, H, W, 1), 1 where the image may change.
    coarse: SpatialGAN only: start with the coarse centre move (eq. 6).
    optimise_centers: SpatialGAN only: optimise the centres with the latent.
    noise: explicit per-layer noise maps (1, R, R, 1) (a projection's); default the stored
      constant maps.
    callback: called as ``callback(step, handles)`` after each tracking step (progress).

  One-shot form of :class:`Dragger` (which streams and keeps its compiled step).
  """
  points = max(1, int(np.size(handles)) // 2)
  run = Dragger(model, config, max_points=points).start(
      ws, handles, targets, heatmaps=heatmaps, mask=mask, coarse=coarse,
      optimise_centers=optimise_centers, noise=noise)
  path = []
  for it in range(config.max_steps):
    info = run.step()
    path.append(info.handles)
    if callback is not None:
      callback(it, info.handles)
    if info.done:
      break
  return run.result(path)


def _point(p: np.ndarray) -> str:
  return f"({p[0]:g},{p[1]:g})"


def describe_report(k: int, handle: np.ndarray, target: np.ndarray, r: HandleReport) -> str:
  """One line: what the drag did around handle ``k`` (1-based), in the image's pixels (what
  ``python -m jaxspatial.drag`` prints and the studio shows)."""
  content = ("its patch is too uniform to measure how far the content moved" if r.uniform else
             f"the content under it moved {r.content:.1f} px (patch match error "
             f"{r.match_error:.3f})")
  return (f"handle {k} {_point(handle)} -> {_point(target)}: asked {r.asked:.1f} px, tracked "
          f"{r.tracked:.1f} px; {content}; the image within {r.radius:g} px of the drag changed "
          f"{100 * r.change:.1f} %")


def report_warnings(k: int, handle: np.ndarray, r: HandleReport, converged: bool
                    ) -> list[str]:
  """``warning:`` lines for a handle on a nearly uniform region, for an image that barely
  changed around the drag, and for a converged drag whose content moved less than half the way:
  there "converged" means the tracked point arrived, not the content."""
  out = []
  if converged and not r.uniform and not r.unchanged and r.content < r.asked / 2:
    out.append(f"warning: handle {k} {_point(handle)} was tracked to its target, but the content "
               f"under it moved only {r.content:.1f} of {r.asked:.1f} px: the generator changed "
               "the image there (stretched or recoloured it) rather than moving it")
  if r.uniform:
    out.append(f"warning: handle {k} {_point(handle)} sits on a nearly uniform region (contrast "
               f"{r.contrast:.3f} < {UNIFORM_CONTRAST} within {r.radius:g} px): point "
               "tracking has nothing to follow there; put handles on an object or its edge")
  if r.unchanged:
    out.append(f"warning: around handle {k} the image barely changed ({100 * r.change:.1f} % < "
               f"{100 * UNCHANGED:g} %): the drag moved nothing there")
  return out
