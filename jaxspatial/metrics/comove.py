"""Co-move ratio (SpatialGAN, Table I): how faithfully an object follows its heatmap centre.

For each sample: generate ``x = G(z, H)``; pick a centre ``c_i`` (a random object of a
multi-object heatmap, the root of a hierarchical one, which drags its finer centres along);
move it by a random vector ``p``; generate ``x' = G(z, H')``. The object of ``c_i`` is the
segment of ``x`` that contains ``c_i`` (paper: "the one where H_i center lies in"); its match
in ``x'`` is the segment with the nearest appearance feature; ``q`` is the displacement of
the match's centroid, and the sample's ratio is ``p . q / |p|^2`` (1 = moves exactly with
the centre, 0 = does not move). Samples whose centre lies on no object, or whose edited image
has no object, are skipped and counted.

Object location is pluggable (:class:`ObjectLocator`: ``segments(image) -> [Segment]``).
The paper uses Mask R-CNN on LSUN Bedroom; :class:`ShapesLocator` handles the embedded
shapes scenes: background = a per-row colour (the sky/ground gradient), foreground = pixels
far from it, split into colour clusters and 8-connected components.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import numpy as np
from scipy import ndimage

from jaxspatial import cli, errors
from jaxspatial.models import heatmaps as hm


@dataclasses.dataclass(frozen=True)
class Segment:
  """One located object: ``mask`` (H, W) bool, ``centroid`` (row, col) px, ``feature`` (d,)."""
  mask: np.ndarray
  centroid: np.ndarray
  feature: np.ndarray


class ObjectLocator(Protocol):
  def segments(self, image: np.ndarray) -> list[Segment]:
    """Objects in one image (H, W, 3) float in [-1, 1]."""


@dataclasses.dataclass(frozen=True)
class ShapesLocator:
  """Colour segmentation of shapes scenes (sky/ground gradient + flat-coloured objects).

  Attributes:
    threshold: RGB distance (in [0, 1] units) from the row's background colour above which
      a pixel is foreground; also the colour-cluster radius.
    min_area: smallest segment, as a fraction of the image area.
  """
  threshold: float = 0.15
  min_area: float = 0.003

  def background(self, rgb: np.ndarray) -> np.ndarray:
    """Per-row background colour (H, 3): the row median where at least half the row lies
    near it, linearly interpolated over the other rows."""
    med = np.median(rgb, axis=1)                                    # (H, 3)
    near = np.linalg.norm(rgb - med[:, None], axis=-1) < self.threshold
    ok = near.mean(axis=1) >= 0.5
    if not ok.any():
      return np.broadcast_to(np.median(rgb.reshape(-1, 3), axis=0), med.shape).copy()
    rows = np.arange(len(med))
    return np.stack([np.interp(rows, rows[ok], med[ok, c]) for c in range(3)], axis=-1)

  def segments(self, image: np.ndarray) -> list[Segment]:
    rgb = (np.asarray(image, np.float32) + 1.0) / 2.0
    h, w, _ = rgb.shape
    fg = np.linalg.norm(rgb - self.background(rgb)[:, None], axis=-1) > self.threshold
    labels = self._colour_clusters(rgb, fg)
    out = []
    min_px = max(2, int(round(self.min_area * h * w)))
    for k in range(1, labels.max() + 1):
      comps, n = ndimage.label(labels == k, structure=np.ones((3, 3)))
      for j in range(1, n + 1):
        mask = comps == j
        if mask.sum() < min_px:
          continue
        out.append(Segment(mask=mask, centroid=np.argwhere(mask).mean(0),
                           feature=rgb[mask].mean(0)))
    return out

  def _colour_clusters(self, rgb: np.ndarray, fg: np.ndarray) -> np.ndarray:
    """Greedy colour clustering of the foreground: labels (H, W), 0 = background."""
    labels = np.zeros(fg.shape, np.int32)
    colours = rgb[fg]
    if not len(colours):
      return labels
    assign = np.zeros(len(colours), np.int32)
    centres: list[np.ndarray] = []
    remaining = np.ones(len(colours), bool)
    while remaining.any():
      seed = np.median(colours[remaining], axis=0)
      near = remaining & (np.linalg.norm(colours - seed, axis=-1) < self.threshold)
      if not near.any():   # the median fell between clusters: start from a member instead
        near = remaining & (np.linalg.norm(colours - colours[remaining][0], axis=-1)
                            < self.threshold)
      centres.append(colours[near].mean(0))
      assign[near] = len(centres)
      remaining &= ~near
    labels[fg] = assign
    return labels


def locate(segments: list[Segment], point: np.ndarray) -> Segment | None:
  """The segment whose mask contains ``point`` (row, col) px, else None."""
  r, c = np.round(point).astype(int)
  for s in segments:
    if 0 <= r < s.mask.shape[0] and 0 <= c < s.mask.shape[1] and s.mask[r, c]:
      return s
  return None


def match(segments: list[Segment], target: Segment) -> Segment | None:
  """The segment with the nearest appearance feature to ``target``."""
  if not segments:
    return None
  return min(segments, key=lambda s: float(np.linalg.norm(s.feature - target.feature)))


def ratio(locator: ObjectLocator, before: np.ndarray, after: np.ndarray,
          centre_px: np.ndarray, p_px: np.ndarray) -> float | None:
  """``p . q / |p|^2`` for one edit (None when the object cannot be located)."""
  obj = locate(locator.segments(before), centre_px)
  if obj is None:
    return None
  moved = match(locator.segments(after), obj)
  if moved is None:
    return None
  q = moved.centroid - obj.centroid
  return float(np.dot(p_px, q) / np.dot(p_px, p_px))


def comove_ratio(model: Any, num: int = 256, seed: int = 0, locator: ObjectLocator | None = None,
                 distance: tuple[float, float] = hm.MOVE_DISTANCE, batch_size: int = 16,
                 truncation: float = 1.0) -> dict[str, float]:
  """The co-move ratio of a SpatialGAN model over ``num`` edits.

  Args:
    model: a ``SpatialGANModel`` (``sample_z``, ``sample_heatmaps``, ``generate``).
    num: number of edits.
    seed: batch ``b`` uses latents, heatmaps and moves drawn from ``seed + b``.
    locator: object locator (default :class:`ShapesLocator`).
    distance: range of ``|p|`` in heatmap units ([-1, 1] spans the image); the moved
      centre is kept inside +-0.9.
  Returns:
    ``comove`` (mean ratio over the located edits), ``comove_all`` (the mean over all
    ``num`` edits, an unlocated edit counting 0: comparable between models that locate
    different subsets), ``comove_median``, ``comove_valid`` (fraction of edits whose object
    was located) and ``comove_count``.
  """
  locator = locator or ShapesLocator()
  if num < 1:
    raise errors.UserError("co-move ratio needs at least one sample")
  res = model.resolution
  ratios: list[float] = []
  for b, start in enumerate(cli.progress(range(0, num, batch_size), desc="co-move",
                                         unit="batch")):
    n = min(batch_size, num - start)
    rng = np.random.default_rng([seed, b])
    z, h = model.sample_z(seed + b, n), model.sample_heatmaps(seed + b, n)
    chosen = rng.choice(h.roots, size=n)
    angle = rng.uniform(0, 2 * np.pi, n)
    length = rng.uniform(*distance, n)
    old = h.centers[np.arange(n), chosen]
    p = hm.move_offsets(old, angle, length)
    moved = h.move_each(chosen, p[:, 0], p[:, 1])
    before = model.generate(z, truncation=truncation, heatmaps=h)
    after = model.generate(z, truncation=truncation, heatmaps=moved)
    scale = (res - 1) / 2.0
    for k in range(n):
      if np.dot(p[k], p[k]) < 1e-8:
        continue
      r = ratio(locator, before[k], after[k], (old[k] + 1) * scale, p[k] * scale)
      if r is not None:
        ratios.append(r)
  valid = np.asarray(ratios)
  return {"comove": float(valid.mean()) if len(valid) else float("nan"),
          "comove_all": float(valid.sum()) / num,
          "comove_median": float(np.median(valid)) if len(valid) else float("nan"),
          "comove_valid": len(valid) / num, "comove_count": float(len(valid))}
