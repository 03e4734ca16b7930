"""SpatialGAN's GradCAM alignment loss (paper eqs. 4-5; official ``genforce/eqgan-sa`` loss).

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
``config.loss.align_weight`` and adds it to the G loss on every G step.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from jaxspatial.models import heatmaps as hm
from jaxspatial.models.spatialgan import resize_aligned

Array = jax.Array
CAM_RESOLUTIONS = (4, 8, 16)
ALIGN_THRESHOLD = 0.25
OBJECTIVES = ("plain", "min")
ALIGN_DEFAULTS = dict(align_weight=0.0, align_resolutions=CAM_RESOLUTIONS,
                      align_threshold=ALIGN_THRESHOLD, align_objective="plain")
"""The one default of each ``loss.align_*`` a config may lack: no alignment term, D's 4, 8 and
16 px CAMs, threshold 0.25, eq. 4. ``configs/spatialgan.py`` sets them (weight 1)."""
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
