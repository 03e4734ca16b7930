"""What SpatialGAN's heatmap edits do to the object they target, and to everything else.

The paper shows moving, removing, scaling and restyling objects (and keeping a layout across
latents) and names its own limitation -- moving one sub-heatmap changes distant regions --
without measuring either. Here every edit is read off the generated images with an object
locator (:class:`~jaxspatial.metrics.comove.ShapesLocator` on shapes scenes): for each sample
a centre ``i`` (a random root of the heatmap) is picked, the object under it in ``x = G(z, H)``
is located, and one edit makes ``x'``:

* **move** ``H.move(i, p)``: the co-move ratio ``p·q / |p|²`` of the object's matched
  centroid (:mod:`.comove`);
* **remove** ``H.remove(i)``: ``remove_kept`` = the share of edits after which an object of
  the same appearance (within the locator's colour threshold) still lies under the centre;
* **scale** ``H.scale(i, f)``, ``f`` = 0.5 or 2 (σ is an area-like parameter of
  ``exp(-|p - c|²/σ)``): ``scale_response`` = ``log(A'/A) / log f`` of the matched object's
  area (1 = the area follows σ, 0 = unchanged);
* **restyle** (models with one style code per object): object ``i``'s latent redrawn:
  ``restyle_inside`` / ``restyle_outside`` = mean colour change inside the object's mask and
  outside it;
* **keep layout** (a new ``z``, the same ``H``): ``keep_located`` = the share of centres
  with an object under them before that still have one after, ``keep_shift`` = the distance
  between the two objects' centroids / image side.

**Locality** (beyond the paper): for move, remove and restyle, ``<edit>_outside`` is the mean
absolute colour change (RGB in [0, 1] units, averaged over channels) over the pixels outside
the edited object's masks before and after the edit (each dilated by one pixel) -- in the
spirit of SSN's distortion R_D: an edit that stays local scores 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from jaxspatial import errors
from jaxspatial.metrics import comove
from jaxspatial.models import heatmaps as hm

SCALE_FACTORS = (0.5, 2.0)
KINDS = ("move", "remove", "scale", "restyle", "keep")


def colour_change(before: np.ndarray, after: np.ndarray, region: np.ndarray) -> float:
  """Mean |after − before| over ``region`` (H, W) bool, RGB in [0, 1] units (images in
  [-1, 1]), averaged over channels; nan for an empty region."""
  if not region.any():
    return float("nan")
  return float(np.abs(after - before)[region].mean() / 2.0)


def outside(before: np.ndarray, after: np.ndarray, *masks: np.ndarray) -> float:
  """:func:`colour_change` outside the union of ``masks`` dilated by one pixel."""
  edited = ndimage.binary_dilation(np.any(np.stack(masks), axis=0), np.ones((3, 3), bool))
  return colour_change(before, after, ~edited)


def _edits(model, kind: str, z: np.ndarray, h, chosen: np.ndarray, rng: np.random.Generator
           ) -> tuple[np.ndarray, Any, np.ndarray]:
  """(z', H', per-sample parameter) of ``kind`` applied to centre ``chosen[k]`` of sample k."""
  n, roots = len(z), sorted(set(chosen.tolist()))
  if kind == "move":
    angle, length = rng.uniform(0, 2 * np.pi, n), rng.uniform(*hm.MOVE_DISTANCE, n)
    p = hm.move_offsets(h.centers[np.arange(n), chosen], angle, length)
    return z, h.move_each(chosen, p[:, 0], p[:, 1]), p
  if kind == "remove":       # Heatmaps.remove per sample: centre chosen[k] of sample k
    gone = chosen[:, None] == np.arange(h.num_centers)[None, :]
    return z, h.replace(amplitudes=np.where(gone, 0.0, h.amplitudes).astype(
        h.amplitudes.dtype)), np.zeros(n)
  if kind == "scale":
    f = rng.choice(SCALE_FACTORS, n)
    for i in roots:
      h = h.scale(i, np.where(chosen == i, f, 1.0))
    return z, h, f
  if kind == "restyle":
    z2 = z.copy()
    fresh = model.sample_z(int(rng.integers(1 << 30)), n)
    z2[np.arange(n), 1 + chosen] = fresh[np.arange(n), 1 + chosen]
    return z2, h, np.zeros(n)
  return model.sample_z(int(rng.integers(1 << 30)), n), h, np.zeros(n)


def heatmap_edits(model: Any, num: int = 64, seed: int = 0,
                  locator: comove.ObjectLocator | None = None,
                  batch_size: int = 16) -> dict[str, float]:
  """Every edit of the module docstring, ``num`` of each on a SpatialGAN ``model`` (restyle
  only where the model has one style code per object). Keys: ``<kind>_located`` (the share of
  edits whose object was found before the edit) and the measures above, each a mean over the
  located edits."""
  if num < 1:
    raise errors.UserError("heatmap edits need at least one sample")
  locator = locator or comove.ShapesLocator()
  res, scale_px = model.resolution, (model.resolution - 1) / 2.0
  kinds = [k for k in KINDS if k != "restyle" or getattr(model, "indoor", False)]
  out: dict[str, list[float]] = {}
  add = lambda key, value: out.setdefault(key, []).append(value)   # noqa: E731
  for kind_index, kind in enumerate(kinds):
    located = 0
    for b, start in enumerate(range(0, num, batch_size)):
      n = min(batch_size, num - start)
      rng = np.random.default_rng([seed, kind_index, b])
      z, h = model.sample_z(seed + b, n), model.sample_heatmaps(seed + b, n)
      chosen = rng.choice(h.roots, size=n)
      z2, h2, param = _edits(model, kind, z, h, chosen, rng)
      before = model.generate(z, heatmaps=h)
      after = model.generate(z2, heatmaps=h2)
      for k in range(n):
        centre = (h.centers[k, chosen[k]] + 1) * scale_px
        obj = comove.locate(locator.segments(before[k]), centre)
        if obj is None:
          continue
        located += 1
        segments = locator.segments(after[k])
        moved = comove.match(segments, obj)
        _measure(kind, add, before[k], after[k], obj, moved, segments, centre, param[k],
                 scale_px, res, locator)
    out[f"{kind}_located"] = [located / num]
  return {k: float(np.nanmean(v)) if len(v) else float("nan") for k, v in out.items()}


def _measure(kind, add, before, after, obj, moved, segments, centre, param, scale_px, res,
             locator) -> None:
  """One located edit's measures (see the module docstring)."""
  after_mask = moved.mask if moved is not None else np.zeros_like(obj.mask)
  if kind == "move":
    p = param * scale_px
    add("move_comove", float(np.dot(p, moved.centroid - obj.centroid) / np.dot(p, p))
        if moved is not None and np.dot(p, p) > 1e-6 else 0.0)
    add("move_outside", outside(before, after, obj.mask, after_mask))
  elif kind == "remove":
    there = comove.locate(segments, centre)
    same = there is not None and np.linalg.norm(there.feature - obj.feature) < locator.threshold
    add("remove_kept", float(same))
    add("remove_outside", outside(before, after, obj.mask, after_mask))
  elif kind == "scale":
    if moved is not None:
      add("scale_response", float(np.log(moved.mask.sum() / obj.mask.sum()) / np.log(param)))
  elif kind == "restyle":
    add("restyle_inside", colour_change(before, after, obj.mask))
    add("restyle_outside", outside(before, after, obj.mask))
  else:
    there = comove.locate(segments, centre)
    add("keep_located", float(there is not None))
    if there is not None:
      add("keep_shift", float(np.linalg.norm(there.centroid - obj.centroid)) / res)
