"""SpatialGAN's objective beyond the adversarial loss: the GradCAM alignment loss (paper eqs.
4-5; official ``genforce/eqgan-sa`` loss) and, beyond the paper, a locality penalty on heatmap
moves (:func:`heatmap_locality_regularizer`, the last section of this module).

For each discriminator block output ``F_r`` at ``r`` in (4, 8, 16) px:

1. channel weights ``alpha_r = mean_HW dT/dF_r`` with ``T = sum_n softplus(-D(x_n))`` (the G
   loss), computed as ``jax.grad`` of ``T`` w.r.t. zero *taps* added to ``F_r``
   (``Discriminator(taps=...)``), on a stop-gradient copy of the image and of D's weights, so
   the weights carry no gradient (official: a second backward on ``img.detach()``);
2. ``CAM_r = sum_c ReLU(alpha_r,c * F_r,c)`` (N, r, r), with ``F_r`` from a forward pass that
   *does* depend on the image, so the loss reaches G through D's features;
3. bilinear upsampling (align corners) to the image size and per-sample min-max
   normalisation with stop-gradient min and max (an all-zero CAM stays zero);
4. target: the generator's heatmap of the matching level at image size -- level ``l`` for
   ``r = 4 * 2^l`` (the last level for coarser heatmaps, e.g. multi-object ones); a level
   with several centres is averaged over them and min-max normalised (stop-gradient);
5. ``L1 = mean |CAM - target|`` over the elements whose error exceeds 0.25 (the plain mean
   when at most one does), pooled over the batch as in the official code;
6. the sum over the levels (weight 1 each).

The indoor objective (eq. 5, ``objective="min"``) compares each CAM with every sub-heatmap
``H_1..H_n`` and their mean ``H`` (each min-max normalised), takes the thresholded L1 per
sample and the minimum over the ``n + 1`` targets, then the batch mean.

D's parameters get no gradient from this loss (stop-gradient inside); the caller scales it by
``config.loss.align_weight`` and adds it to the G loss on every G step (or, lazily, k x the
weight on every ``config.loss.align_every`` = k-th step: ``training.spatialgan``).

The locality penalty (not in the paper, which names the limitation it targets: moving one
sub-heatmap changes distant regions) moves one root centre per sample by a random offset
(the move of the co-move and edit measures), renders ``G(z, H)`` and ``G(z, H')`` with the same
``z`` and noise, and penalises the squared colour change outside the moved object's old and
new heatmap regions; the caller scales it by ``config.loss.locality_weight`` (0 by default).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxspatial.losses.distortion import pixel_distortion
from jaxspatial.models import heatmaps as hm
from jaxspatial.models.spatialgan import resize_aligned

Array = jax.Array
CAM_RESOLUTIONS = (4, 8, 16)
ALIGN_THRESHOLD = 0.25
OBJECTIVES = ("plain", "min")
ALIGN_DEFAULTS = dict(align_weight=0.0, align_resolutions=CAM_RESOLUTIONS,
                      align_threshold=ALIGN_THRESHOLD, align_objective="plain", align_every=1)
"""The one default of each ``loss.align_*`` a config may lack: no alignment term, D's 4, 8 and
16 px CAMs, threshold 0.25, eq. 4, on every G step. ``configs/spatialgan.py`` sets them
(weight 1, every step)."""
DApply = Callable[..., Any]   # d_apply(d_params, images, taps=None, return_features=False)


def discriminator_apply(discriminator) -> DApply:
  """``d_apply`` for a Flax discriminator taking ``taps`` and ``return_features``."""
  return lambda d_params, images, **kw: discriminator.apply(d_params, images, **kw)


def cam_resolutions(image_resolution: int,
                    resolutions: tuple[int, ...] = CAM_RESOLUTIONS) -> tuple[int, ...]:
  """The requested resolutions that are D block outputs (below the image size)."""
  out = tuple(r for r in resolutions if r < image_resolution)
  if not out:
    raise ValueError(f"no GradCAM resolution among {resolutions} below {image_resolution} px")
  return out


def gradcam_weights(d_apply: DApply, d_params: Any, images: Array,
                    resolutions: tuple[int, ...]) -> dict[int, Array]:
  """``alpha_r = mean_HW d(sum softplus(-D(x)))/dF_r``: {r: (N, 1, 1, C)}, no gradient."""
  images = jax.lax.stop_gradient(images)
  d_params = jax.lax.stop_gradient(d_params)
  _, shapes = jax.eval_shape(lambda: d_apply(d_params, images, return_features=True))
  zeros = {r: jnp.zeros(shapes[r].shape, shapes[r].dtype) for r in resolutions}

  def target(taps):
    return jnp.sum(jax.nn.softplus(-d_apply(d_params, images, taps=taps)))

  grads = jax.grad(target)(zeros)
  return {r: jax.lax.stop_gradient(jnp.mean(g, axis=(1, 2), keepdims=True))
          for r, g in grads.items()}


def class_activation_maps(weights: dict[int, Array], features: dict[int, Array]) -> dict[int, Array]:
  """``CAM_r = sum_c ReLU(alpha_c F_c)``: {r: (N, r, r)}."""
  return {r: jnp.sum(jax.nn.relu(w * features[r].astype(jnp.float32)), axis=-1)
          for r, w in weights.items()}


def gradcam(d_apply: DApply, d_params: Any, images: Array,
            resolutions: tuple[int, ...] = CAM_RESOLUTIONS) -> dict[int, Array]:
  """D's GradCAM attention {r: (N, r, r)} (un-normalised), e.g. for visualisation."""
  res = cam_resolutions(images.shape[1], resolutions)
  _, feats = d_apply(d_params, images, return_features=True)
  return class_activation_maps(gradcam_weights(d_apply, d_params, images, res), feats)


def normalized_cams(d_apply: DApply, d_params: Any, images: Array,
                    resolutions: tuple[int, ...] = CAM_RESOLUTIONS,
                    features: dict[int, Array] | None = None) -> dict[int, Array]:
  """The CAMs as the alignment loss compares them (steps 1-3 of the module doc): ``CAM_r``
  upsampled bilinearly (align corners) to the image size and min-max normalised per sample
  with stop-gradient bounds: {r: (N, R, R)} for the ``resolutions`` below the image size.

  ``features``: D's features of ``images`` when the caller has them (differentiable w.r.t.
  the images, computed with stop-gradient D params); else computed here.
  """
  size = images.shape[1]
  res = cam_resolutions(size, resolutions)
  if features is None:
    _, features = d_apply(jax.lax.stop_gradient(d_params), images, return_features=True)
  cams = class_activation_maps(gradcam_weights(d_apply, d_params, images, res), features)
  return {r: minmax_normalize(resize_aligned(cams[r][..., None], size)[..., 0]) for r in res}


def minmax_normalize(x: Array) -> Array:
  """Per-sample ``(x - min) / max(x - min)`` over all but the batch axis; min and max are
  stop-gradient; a constant sample maps to 0."""
  axes = tuple(range(1, x.ndim))
  lo = jax.lax.stop_gradient(jnp.min(x, axis=axes, keepdims=True))
  y = x - lo
  hi = jax.lax.stop_gradient(jnp.max(y, axis=axes, keepdims=True))
  ok = hi > 0
  return jnp.where(ok, y / jnp.where(ok, hi, 1.0), 0.0)


def thresholded_l1(err: Array, threshold: float = ALIGN_THRESHOLD, axis=None) -> Array:
  """Mean of ``err`` over its elements above ``threshold`` (along ``axis``; all if None),
  or the plain mean where at most one element exceeds it."""
  above = err > threshold
  count = jnp.sum(above, axis=axis)
  masked = jnp.sum(jnp.where(above, err, 0.0), axis=axis) / jnp.maximum(count, 1)
  return jnp.where(count > 1, masked, jnp.mean(err, axis=axis))


def level_index(resolution: int) -> int:
  """The level ``l`` of D's ``resolution = 4 * 2^l`` px features (official key ``b<2r>``)."""
  return resolution.bit_length() - 3


def level_for(resolution: int, heatmaps: hm.Heatmaps) -> int:
  """Heatmap level aligned with D's ``resolution`` px features."""
  return min(level_index(resolution), heatmaps.num_levels - 1)


def heatmap_target(heatmaps: hm.Heatmaps, level: int, size: int) -> Array:
  """Level maps at ``size``; one centre as is, several averaged + min-max normalised:
  (N, size, size)."""
  maps = heatmaps.level_maps(level, size)
  if maps.shape[-1] == 1:
    return maps[..., 0]
  return minmax_normalize(jnp.mean(maps, axis=-1))


def gradcam_alignment_loss(d_apply: DApply, d_params: Any, fake_images: Array,
                           heatmaps: hm.Heatmaps, *,
                           resolutions: tuple[int, ...] = CAM_RESOLUTIONS,
                           threshold: float = ALIGN_THRESHOLD, objective: str = "plain",
                           features: dict[int, Array] | None = None
                           ) -> tuple[Array, dict[str, Array]]:
  """The alignment loss ``sum_r L1_thr(norm(up(CAM_r(G(z, H)))), H_r)`` (module doc).

  Args:
    d_apply: ``d_apply(d_params, images, taps=None, return_features=False)`` ->
      logits (N,) or ``(logits, {res: (N, r, r, C)})``; see :func:`discriminator_apply`.
    d_params: D's variables (no gradient flows into them).
    fake_images: G's images (N, R, R, 3); gradients flow back through them.
    heatmaps: the :class:`~jaxspatial.models.heatmaps.Heatmaps` G was given.
    resolutions: D feature resolutions (those >= the image size are skipped).
    threshold: tau of the truncated L1 (0.25).
    objective: "plain" (eq. 4) or "min" (indoor, eq. 5).
    features: D's features of ``fake_images`` if the caller already has them (they must be
      differentiable w.r.t. the images and computed with stop-gradient D params).
  Returns:
    ``(loss, metrics)``: the unweighted scalar loss and {"align/<r>px": per-level loss}.
  """
  if objective not in OBJECTIVES:
    raise ValueError(f"alignment objective must be one of {OBJECTIVES}, got {objective!r}")
  size = fake_images.shape[1]
  cams = normalized_cams(d_apply, d_params, fake_images, resolutions, features)
  total, metrics = jnp.zeros((), jnp.float32), {}
  for r, cam in cams.items():
    level = level_for(r, heatmaps)
    if objective == "plain":
      term = thresholded_l1(jnp.abs(cam - heatmap_target(heatmaps, level, size)), threshold)
    else:
      maps = heatmaps.level_maps(level, size)
      targets = [maps[..., i] for i in range(maps.shape[-1])] + [jnp.mean(maps, axis=-1)]
      per_target = jnp.stack([
          thresholded_l1(jnp.abs(cam - minmax_normalize(t)), threshold, axis=(1, 2))
          for t in targets], axis=0)
      term = jnp.mean(jnp.min(per_target, axis=0))
    metrics[f"align/{r}px"] = term
    total = total + term
  return total, metrics


# ---------------------------------------------------------------------------- locality

LOCALITY_DEFAULTS = dict(locality_weight=0.0, locality_threshold=0.1, locality_batch_shrink=1)
"""The one default of each ``loss.locality_*`` a config may lack: no locality term (the
paper); a sub-heatmap's region where it exceeds 0.1; the whole batch."""
LOCALITY_DILATION = 1
"""Pixels the edited region grows by (a 3x3 max-pool), as the edit measures dilate masks."""


def random_move(heatmaps: hm.Heatmaps, key: Array) -> tuple[hm.Heatmaps, Array]:
  """Moves one root centre per sample (with its children) as the co-move and edit measures
  do: a uniform root ``i``, ``|p| ~ U(MOVE_DISTANCE)`` in a uniform direction, the new centre
  kept inside ``+-MOVE_LIMIT`` (:func:`~jaxspatial.models.heatmaps.move_offsets`), by
  :meth:`~jaxspatial.models.heatmaps.Heatmaps.move_each`. Returns ``(H', chosen)``, ``chosen``
  (N,) the moved root of each sample."""
  n = heatmaps.batch_size
  k_root, k_angle, k_length = jax.random.split(key, 3)
  chosen = jax.random.choice(k_root, jnp.asarray(heatmaps.roots), (n,))
  angle = jax.random.uniform(k_angle, (n,), maxval=2 * jnp.pi)
  length = jax.random.uniform(k_length, (n,), minval=hm.MOVE_DISTANCE[0],
                              maxval=hm.MOVE_DISTANCE[1])
  old = jnp.take_along_axis(jnp.asarray(heatmaps.centers, jnp.float32),
                            chosen[:, None, None], axis=1)[:, 0]
  p = hm.move_offsets(old, angle, length)
  return heatmaps.move_each(chosen, p[:, 0], p[:, 1]), chosen


def edit_region(before: hm.Heatmaps, after: hm.Heatmaps, chosen: Array, resolution: int,
                threshold: float = LOCALITY_DEFAULTS["locality_threshold"]) -> Array:
  """The region ``Omega`` an edit of root ``chosen[k]`` may change: the pixels where one of
  the edited centres' sub-heatmaps (the root and its children), before or after the edit,
  exceeds ``threshold``, dilated by :data:`LOCALITY_DILATION` px: (N, R, R) float 0/1,
  no gradient."""
  members = np.array([[k == i or k in before.descendants(i) for k in range(before.num_centers)]
                      for i in before.roots])                      # (roots, K)
  row = jnp.searchsorted(jnp.asarray(before.roots), chosen)
  edited = jnp.asarray(members)[row][:, None, None, :]             # (N, 1, 1, K)
  above = (before.maps(resolution) > threshold) | (after.maps(resolution) > threshold)
  region = jnp.any(above & edited, axis=-1).astype(jnp.float32)
  size = 2 * LOCALITY_DILATION + 1
  region = jax.lax.reduce_window(region, 0.0, jax.lax.max, (1, size, size), (1, 1, 1), "SAME")
  return jax.lax.stop_gradient(region)


def outside_distortion(x: Array, x_edited: Array, region: Array) -> Array:
  """Per sample, the mean over the pixels outside ``region`` (N, R, R; 1 inside) of SSN's
  pixel distortion ``D(x, x')(q) = sum_c (x_c(q) - x'_c(q))^2`` (images in [-1, 1]); 0 for a
  sample with no pixel outside: (N,)."""
  out = 1.0 - region
  total = jnp.sum(pixel_distortion(x, x_edited) * out, axis=(1, 2))
  return total / jnp.maximum(jnp.sum(out, axis=(1, 2)), 1.0)


def heatmap_locality_regularizer(generate_fn: Callable[[hm.Heatmaps], Array],
                                 heatmaps: hm.Heatmaps, key: Array, *,
                                 threshold: float = LOCALITY_DEFAULTS["locality_threshold"]
                                 ) -> tuple[Array, dict[str, Array]]:
  """The heatmap-locality penalty (ours; not in SpatialGAN)::

      L_loc(G) = E_{z, H, i, p} [ mean_{q not in Omega} D(G(z, H), G(z, H'))(q) ]

  ``H' = move(H, i, p)`` moves root centre ``i`` (uniform over the roots, children along) by a
  random ``p`` (:func:`random_move`); ``D(x, x')(q) = sum_c (x_c(q) - x'_c(q))^2`` is SSN's
  per-pixel distortion; ``Omega`` is where the moved sub-heatmaps of ``H`` or ``H'`` exceed
  ``threshold``, dilated by one pixel (:func:`edit_region`); a sample with no pixel outside
  it counts 0 (:func:`outside_distortion`). One draw of ``(i, p)`` per sample, the batch
  mean.

  Relation to SSN's R_D (:func:`jaxspatial.losses.ssn.distortion_regularizer`): R_D edits a
  latent (resamples block ``a``) and averages the same ``D`` over the blocks ``b != a`` of a
  fixed grid; here the edit is a heatmap move and the region allowed to change is the moved
  object's, old and new place, read off the heatmap rather than a grid block. With
  ``reduction="mean"`` both are a per-pixel mean of ``D`` outside the edited region, so their
  scales compare. Unlike a latent block, a moved object must leave its old place and appear at
  its new one, so ``Omega`` holds both. Whatever of the object reaches beyond ``Omega`` -- a
  shadow it casts, a part wider than its heatmap -- counts as change outside: the threshold
  sets how much room the object has.

  Args:
    generate_fn: heatmaps -> images (N, R, R, 3), deterministic given its input (the same
      ``z`` and noise in both calls), differentiable w.r.t. G's parameters.
    heatmaps: the (N,) heatmaps to edit.
    key: the edit's randomness.
    threshold: a sub-heatmap's region is where it exceeds this value.
  Returns:
    ``(loss, aux)``; aux: ``chosen`` (N,) the moved roots, ``region`` (N, R, R) ``Omega``,
    ``per_sample`` (N,), ``images`` and ``edited`` the two renderings.
  """
  moved, chosen = random_move(heatmaps, key)
  x, x_edited = generate_fn(heatmaps), generate_fn(moved)
  region = edit_region(heatmaps, moved, chosen, x.shape[1], threshold)
  per_sample = outside_distortion(x, x_edited, region)
  return jnp.mean(per_sample), {"chosen": chosen, "region": region, "per_sample": per_sample,
                                "images": x, "edited": x_edited}
