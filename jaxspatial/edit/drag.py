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
latent. The paper gives neither ``α`` nor the radius nor a learning rate for the centres; ours
are ``DragConfig.coarse_alpha = 1``, ``coarse_radius = 0.3`` (heatmap units, [-1, 1]) and
``center_lr = 0.01``.

Points are ``(row, col)`` in pixels of the generator's output.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxspatial.cli import UserError
from jaxspatial.models.heatmaps import Heatmaps

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class DragConfig:
  """DragGAN's settings (paper defaults) and the SpatialGAN synergy's (ours, see module doc)."""
  max_steps: int = 200
  lr: float = 1e-3                # Adam on the optimised W+ rows
  num_layers: int = 6             # W+ rows optimised: the first 6
  feature_block: int = 5          # the 6th synthesis block (clamped to the generator's last)
  mask_weight: float = 10.0       # λ of the mask term (DragGAN's official value)
  center_lr: float = 0.01         # Adam on the heatmap centres (SpatialGAN)
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
                            offsets: Array) -> Array:
  """DragGAN eq. 1 without the mask term: ``feat`` (H, W, C), ``handles``/``targets``
  (P, 2), ``offsets`` (Q, 2) from :func:`disk_offsets` -> scalar."""
  direction = targets - handles
  direction = direction / jnp.maximum(jnp.linalg.norm(direction, axis=-1, keepdims=True), 1e-8)
  q = handles[:, None, :] + offsets[None]                               # (P, Q, 2)
  here = jax.lax.stop_gradient(bilinear_sample(feat, q))
  ahead = bilinear_sample(feat, q + direction[:, None, :])
  return jnp.sum(jnp.mean(jnp.abs(here - ahead), axis=(1, 2)))


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


def coarse_move(heatmaps: Heatmaps, handles: np.ndarray, targets: np.ndarray, size: int,
                alpha: float, radius: float) -> Heatmaps:
  """SpatialGAN eq. 6 on a one-sample ``heatmaps``: every root centre within ``radius``
  (heatmap units) of a handle moves by ``alpha (t - p)`` with its children."""
  to_unit = 2.0 / (size - 1)
  p = np.asarray(handles, np.float64) * to_unit - 1.0
  shift = (np.asarray(targets, np.float64) - np.asarray(handles, np.float64)) * to_unit
  centres = np.asarray(heatmaps.centers)[0]
  for i, parent in enumerate(heatmaps.parents):
    if parent != -1:
      continue
    near = np.linalg.norm(p - centres[i], axis=-1) <= radius
    if near.any():
      dy, dx = alpha * shift[near].mean(axis=0)
      heatmaps = heatmaps.move(i, float(dy), float(dx))
  return heatmaps


def _points(a: Any, name: str, size: int) -> np.ndarray:
  a = np.asarray(a, np.float32).reshape(-1, 2) if np.size(a) else np.zeros((0, 2), np.float32)
  if not len(a):
    raise UserError(f"give at least one {name} point")
  if ((a < 0) | (a > size - 1)).any():
    raise UserError(f"{name} points must lie in the {size}x{size} image, got {a.tolist()}")
  return a


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
  """
  spatial = model.kind == "spatialgan"
  if model.kind not in ("stylegan2", "spatialgan"):
    raise UserError(f"dragging works on stylegan2 and spatialgan models, not {model.kind!r}")
  if spatial and heatmaps is None:
    raise UserError("a SpatialGAN drag needs the image's heatmaps")
  size = model.resolution
  handles, targets = _points(handles, "handle", size), _points(targets, "target", size)
  if handles.shape != targets.shape:
    raise UserError(f"{len(handles)} handle(s) but {len(targets)} target(s)")
  ws = np.asarray(ws, np.float32)
  if ws.shape[0] != 1 or ws.shape[1] != model.num_ws:
    raise UserError(f"ws must be W+ of one image, (1, {model.num_ws}, ...); got {ws.shape}")
  if noise is not None:
    noise = [jnp.asarray(m) for m in model.check_noise_maps(noise, 1)]
  r1, r2, stop = radii(size)
  g, g_vars = model.generator, model.g_vars
  n_opt = min(config.num_layers, model.num_ws)
  block = min(config.feature_block, int(round(math.log2(size))) - 2)
  if spatial:
    heatmaps = model.check_heatmaps(heatmaps, 1)
    if coarse:
      heatmaps = coarse_move(heatmaps, handles, targets, size, config.coarse_alpha,
                             config.coarse_radius)
    heatmaps = jax.tree.map(jnp.asarray, heatmaps)

  def features(params):
    full = jnp.concatenate([params["ws"], ws_rest], axis=1)
    if spatial:
      h = heatmaps.replace(centers=params["centers"]) if "centers" in params else heatmaps
      img, feats = g.apply(g_vars, full, h, "const", noise, True, method=type(g).synthesize)
    else:
      img, feats = g.apply(g_vars, full, "const", noise, True, method=type(g).synthesize)
    f = jax.image.resize(feats[block][0], (size, size, feats[block].shape[-1]), "bilinear")
    return img[0], f

  ws_rest = jnp.asarray(ws[:, n_opt:])
  params = {"ws": jnp.asarray(ws[:, :n_opt])}
  labels = {"ws": "ws"}
  if spatial and optimise_centers:
    params["centers"] = heatmaps.centers
    labels["centers"] = "centers"
  optimizer = optax.multi_transform({"ws": optax.adam(config.lr),
                                     "centers": optax.adam(config.center_lr)}, labels)
  offsets = jnp.asarray(disk_offsets(r1))
  keep = None if mask is None else 1.0 - jnp.asarray(mask, jnp.float32).reshape(size, size, 1)
  t = jnp.asarray(targets)

  @jax.jit
  def reference_features(params):
    return features(params)[1]

  feat0 = reference_features(params)
  f_handles = bilinear_sample(feat0, jnp.asarray(handles))

  def tracked(params, p):
    img, f = features(params)
    new_p = track_points(jax.lax.stop_gradient(f), f_handles, p, r2).astype(jnp.float32)
    return img, f, new_p, jnp.all(jnp.linalg.norm(new_p - t, axis=-1) <= stop)

  @jax.jit
  def step(params, opt_state, p):
    """Track, then (unless every handle has arrived) one motion-supervision Adam step."""
    def loss_fn(params):
      _, f, new_p, done = tracked(params, p)
      loss = motion_supervision_loss(f, new_p, t, offsets)
      if keep is not None:
        loss = loss + config.mask_weight * jnp.mean(jnp.abs(f - feat0) * keep)
      return loss, (new_p, done)
    (_, (new_p, done)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, new_state = optimizer.update(grads, opt_state, params)
    new_params = jax.tree.map(lambda a, u: jnp.where(done, a, a + u), params, updates)
    return new_params, new_state, new_p, done

  opt_state = optimizer.init(params)
  p = jnp.asarray(handles)
  path, steps = [], 0
  for it in range(config.max_steps):
    params, opt_state, p, done = step(params, opt_state, p)
    path.append(np.asarray(p))
    if callback is not None:
      callback(it, path[-1])
    if bool(done):
      break
    steps += 1
  image, _, p, done = jax.jit(tracked)(params, p)      # where the last step left the handles
  path.append(np.asarray(p))
  final_ws = np.concatenate([np.asarray(params["ws"]), np.asarray(ws_rest)], axis=1)
  final_h = None
  if spatial:
    final_h = (heatmaps.replace(centers=params["centers"]) if "centers" in params
               else heatmaps).numpy()
  return DragResult(ws=final_ws, heatmaps=final_h, image=np.asarray(image), handles=path[-1],
                    path=path, steps=steps, converged=bool(done))
