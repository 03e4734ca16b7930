"""The embedded procedural "shapes" dataset: simple scenes drawn from an index.

Each scene is a sky/ground gradient with a horizon at a random height, plus 1..``max_objects``
flat-coloured objects (circle, square, triangle, tower-with-roof, ellipse) at random sizes and
positions; later objects occlude earlier ones. A scene is a pure function of ``(seed, index)``
(a fresh ``numpy`` generator seeded with both; no global state), so the dataset supports
random access at any resolution and can be shuffled and sharded by grain like a stored one.
Nothing is downloaded or stored: this is the data a new user trains on in minutes.

Alongside the image every example carries ground truth that replaces the segmentation networks
of the papers: per-object visible masks, object centres and class ids.

**Lit scenes** (``lighting=True``, ``--config.data.lighting=true``): every part of a scene
depends on causes it shares with the rest, so that a collage of two scenes' parts shows two
causes although each part alone looks real (the latent-regression paper's premise that
collages are unrealistic, which flat scenes cannot test: there a paste of parts is a valid
scene). One light direction per scene, from the sky (up to 75° off vertical, left or right),
shades every object (its colour darkens linearly away from the light, to
``1 - SHADE_DEPTH`` on the far side) and casts every object's shadow the same way (its
silhouette moved ``SHADOW_LENGTH`` of its size away from the light, darkening the ground it
falls on by ``SHADOW_DARKNESS``; shadows never fall on the sky). Objects stand on the ground:
each one's base lies below the horizon, so the horizon's per-scene height is a cause of the
whole layout, not of the background alone. Lit examples add ``light`` and ``horizon``.

Example fields (``K = max_objects``; slots ``num_objects..K-1`` are padding):

- ``image``        uint8 ``(H, W, 3)``
- ``masks``        uint8 ``(K, H, W)`` in {0, 1}, disjoint: the visible part of each object
  after occlusion by later ones (a pixel belongs to an object covering at least half of its
  supersamples, the front one on a tie); zero for padding.
- ``centres``      float32 ``(K, 2)``: ``(y, x)`` centre of each object's bounding box in
  [-1, 1] with the pixel-centre convention ``y = (row + 0.5) / H * 2 - 1``; 0 for padding.
- ``class_ids``    int32 ``(K,)``: index into :data:`CLASS_NAMES`; -1 for padding.
- ``num_objects``  int32 scalar.
- ``light``        (lit scenes only) float32 ``(2,)``: the unit ``(y, x)`` direction towards the
  light in image axes (y down, so ``light[0] < 0``).
- ``horizon``      (lit scenes only) float32 scalar: the sky/ground boundary in rows (row ``r``
  covers ``[r, r + 1)``).

Rendering is vectorised numpy on a grid supersampled ``supersample`` times per axis and
box-filtered down (anti-aliased edges); ``bench_shapes`` in :mod:`jaxspatial.benchmarks.data`
measures its speed.
"""

from __future__ import annotations

import colorsys
import math
from typing import Any

import numpy as np

CLASS_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "tower", "ellipse")
"""Object classes; ``class_ids`` index this tuple."""

_MIN_SIZE, _MAX_SIZE = 0.10, 0.22   # object half-size as a fraction of min(H, W)
_MIN_VISIBLE = 0.35                 # every object keeps at least this share of its area visible
_MAX_LAYOUT_TRIES = 12
_MIN_CONTRAST = 0.3                 # RGB distance (in [0, 1] units) of objects from the background

SHADE_DEPTH = 0.5
"""Lit scenes: an object's far side from the light is its colour times ``1 - SHADE_DEPTH``."""
SHADOW_LENGTH = 0.6
"""Lit scenes: a shadow is its object's silhouette moved this fraction of the object's larger
half-size away from the light."""
SHADOW_DARKNESS = 0.55
"""Lit scenes: ground in shadow is its colour times this factor."""
_MAX_LIGHT_TILT = math.radians(75)  # lit scenes: the light's largest angle from the vertical
_MIN_LIGHT_TILT = math.radians(20)  # ... and its smallest, so shadows always fall to one side
_MIN_STANDING = 0.15                # lit scenes: bases this share of the ground below the horizon


def _hsv(h: float, s: float, v: float) -> np.ndarray:
  return np.asarray(colorsys.hsv_to_rgb(h % 1.0, s, v), np.float32)


class ShapesSource:
  """Random-access source of procedural scenes (grain ``RandomAccessDataSource`` protocol).

  ``source[i]`` returns the example dict described in the module docstring; the same
  ``(seed, i)`` always gives identical arrays. ``len(source)`` is the virtual length
  ``length`` (the scenes are generated, so it only sets how an epoch is counted).
  """

  def __init__(self, resolution: int | tuple[int, int] = 64, *, max_objects: int = 4,
               num_objects: int = 0, seed: int = 0, length: int = 1_000_000,
               supersample: int = 2, lighting: bool = False):
    """Args:
      resolution: output size, ``S`` for ``S x S`` or ``(H, W)``.
      max_objects: ``K``, the padded number of object slots.
      num_objects: objects per scene; 0 draws it uniformly from ``1..max_objects``.
      seed: dataset seed; different seeds give different scene collections.
      length: virtual number of examples.
      supersample: anti-aliasing factor per axis (1 = none).
      lighting: lit scenes (module docstring): one light and one horizon shape the scene.
    """
    h, w = (resolution, resolution) if isinstance(resolution, int) else resolution
    if h < 4 or w < 4:
      raise ValueError(f"shapes resolution must be at least 4 px, got {resolution}")
    if not 1 <= max_objects <= 127:
      raise ValueError(f"max_objects must be in 1..127, got {max_objects}")
    if not 0 <= num_objects <= max_objects:
      raise ValueError(f"num_objects must be in 0..max_objects={max_objects}, got {num_objects}")
    if length < 1 or supersample < 1 or seed < 0:
      raise ValueError("length and supersample must be positive and seed non-negative")
    self.height, self.width = int(h), int(w)
    self.max_objects = int(max_objects)
    self.num_objects = int(num_objects)
    self.seed = int(seed)
    self.length = int(length)
    self.supersample = int(supersample)
    self.lighting = bool(lighting)
    s = self.supersample
    # Supersample centres in output-pixel units (row r covers [r, r + 1)).
    self._ys = ((np.arange(self.height * s, dtype=np.float32) + 0.5) / s)
    self._xs = ((np.arange(self.width * s, dtype=np.float32) + 0.5) / s)
    self._slots = np.arange(self.max_objects, dtype=np.int8)[:, None, None]

  def __len__(self) -> int:
    return self.length

  def __repr__(self) -> str:
    return (f"ShapesSource(resolution=({self.height}, {self.width}), "
            f"max_objects={self.max_objects}, num_objects={self.num_objects}, "
            f"seed={self.seed}, length={self.length}"
            + (", lighting=True)" if self.lighting else ")"))

  def __getitem__(self, index: int) -> dict[str, Any]:
    index = int(index)
    if index < 0:
      index += self.length
    if not 0 <= index < self.length:
      raise IndexError(f"index {index} out of range for {self.length} shapes scenes")
    return self._render(np.random.default_rng([self.seed, index]))

  # -- drawing ---------------------------------------------------------------------------------

  def _background(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """Per-supersample-row colours ``(H*s, 3)``, the two extreme colours ``(2, 3)`` and the
    horizon row."""
    sky_h, sky_s, sky_v = rng.uniform(0.5, 0.68), rng.uniform(0.25, 0.55), rng.uniform(0.7, 0.95)
    gnd_h, gnd_s, gnd_v = rng.uniform(0.06, 0.36), rng.uniform(0.25, 0.55), rng.uniform(0.35, 0.6)
    horizon = rng.uniform(0.45, 0.75) * self.height
    sky_top, sky_low = _hsv(sky_h, sky_s, sky_v), _hsv(sky_h, sky_s * 0.35, min(1.0, sky_v + 0.1))
    gnd_near, gnd_far = _hsv(gnd_h, gnd_s, gnd_v), _hsv(gnd_h, gnd_s, gnd_v * 0.6)
    ys = self._ys
    t_sky = np.clip(ys / horizon, 0, 1)[:, None]
    t_gnd = np.clip((ys - horizon) / (self.height - horizon), 0, 1)[:, None]
    rows = np.where((ys < horizon)[:, None], sky_top + (sky_low - sky_top) * t_sky,
                    gnd_near + (gnd_far - gnd_near) * t_gnd)
    return rows.astype(np.float32), np.stack([sky_low, gnd_near]), float(horizon)

  @staticmethod
  def _light(rng: np.random.Generator) -> np.ndarray:
    """The unit ``(y, x)`` direction towards a light in the sky, tilted left or right."""
    tilt = rng.uniform(_MIN_LIGHT_TILT, _MAX_LIGHT_TILT) * (1 if rng.uniform() < 0.5 else -1)
    return np.asarray([-math.cos(tilt), math.sin(tilt)], np.float32)

  def _object_colour(self, rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A saturated colour at least ``_MIN_CONTRAST`` from each of ``background (n, 3)``
    (best effort: the 8th draw is kept regardless)."""
    for _ in range(8):
      colour = _hsv(rng.uniform(), rng.uniform(0.55, 1.0), rng.uniform(0.45, 1.0))
      if np.min(np.linalg.norm(background - colour, axis=-1)) >= _MIN_CONTRAST:
        break
    return colour

  def _layout(self, rng: np.random.Generator, n: int,
              ground: float | None = None) -> list[tuple[int, float, float, float, float]]:
    """``n`` objects as ``(class_id, cy, cx, half_height, half_width)`` in output pixels;
    with ``ground`` (a row) every object's base ``cy + half_height`` lies below it."""
    m = min(self.height, self.width)
    objects = []
    for _ in range(n):
      cls = int(rng.integers(len(CLASS_NAMES)))
      r = rng.uniform(_MIN_SIZE, _MAX_SIZE) * m
      if cls == 1:            # square: same visual weight as a circle of radius r
        hy = hx = 0.9 * r
      elif cls == 3:          # tower: tall and narrow
        hy, hx = 1.15 * r, 0.6 * r
      elif cls == 4:          # ellipse: elongated along a random axis
        a = rng.uniform(1.35, 1.8)
        hy, hx = (r * a, r / a) if rng.uniform() < 0.5 else (r / a, r * a)
      else:
        hy = hx = r
      hy, hx = min(hy, self.height / 2), min(hx, self.width / 2)
      low = hy if ground is None else max(hy, ground - hy)
      cy = rng.uniform(low, self.height - hy)
      cx = rng.uniform(hx, self.width - hx)
      objects.append((cls, cy, cx, hy, hx))
    return objects

  def _parts(self, cls: int, dy: np.ndarray, dx: np.ndarray, hy: float,
             hx: float) -> list[np.ndarray]:
    """Inside-masks of an object's parts on a window; ``dy (h,1)``, ``dx (1,w)`` are offsets
    from its centre. Towers have two parts (body, roof); everything else one."""
    if cls == 0:
      return [dy * dy + dx * dx <= hy * hy]
    if cls == 1:
      return [(np.abs(dy) <= hy) & (np.abs(dx) <= hx)]
    if cls == 2:    # apex up at dy = -hy, base at dy = +hy
      t = (dy + hy) / (2 * hy)
      return [(t >= 0) & (t <= 1) & (np.abs(dx) <= hx * t)]
    if cls == 3:
      roof_base = -hy + 1.1 * hx   # roof height 1.1 * hx, body below it
      body = (dy >= roof_base) & (dy <= hy) & (np.abs(dx) <= 0.62 * hx)
      t = (dy + hy) / (roof_base + hy)
      roof = (t >= 0) & (t < 1) & (np.abs(dx) <= hx * t)
      return [body, roof]
    return [(dy / hy) ** 2 + (dx / hx) ** 2 <= 1.0]

  def _render(self, rng: np.random.Generator) -> dict[str, Any]:
    """One scene drawn from ``rng``: the example dict of the module docstring."""
    k, s = self.max_objects, self.supersample
    n = self.num_objects or int(rng.integers(1, k + 1))
    rows, extremes, horizon = self._background(rng)
    light = self._light(rng) if self.lighting else None
    ground = horizon + _MIN_STANDING * (self.height - horizon) if self.lighting else None
    hs, ws = self.height * s, self.width * s

    for _ in range(_MAX_LAYOUT_TRIES):
      layout = self._layout(rng, n, ground)
      owner = np.full((hs, ws), -1, np.int8)   # which object each supersample shows
      drawn = []                               # (window, part masks) per object
      areas = np.zeros(n, np.int64)
      for i, (cls, cy, cx, hy, hx) in enumerate(layout):
        r0, r1 = max(0, math.floor((cy - hy) * s)), min(hs, math.ceil((cy + hy) * s))
        c0, c1 = max(0, math.floor((cx - hx) * s)), min(ws, math.ceil((cx + hx) * s))
        dy = (self._ys[r0:r1] - cy)[:, None]
        dx = (self._xs[c0:c1] - cx)[None, :]
        parts = self._parts(cls, dy, dx, hy, hx)
        inside = parts[0] if len(parts) == 1 else np.logical_or.reduce(parts)
        owner[r0:r1, c0:c1][inside] = i
        areas[i] = inside.sum()
        drawn.append(((slice(r0, r1), slice(c0, c1)), parts))
      visible = np.bincount(owner[owner >= 0], minlength=n)
      if np.all(visible >= _MIN_VISIBLE * np.maximum(areas, 1)):
        break

    canvas = np.empty((3, hs, ws), np.float32)   # channel-first: fast fills and strided sums
    canvas[...] = rows.T[:, :, None]
    if light is not None:
      canvas[:, self._shadows(layout, drawn, light, horizon)] *= SHADOW_DARKNESS
    for (cls, cy, cx, hy, hx), (window, parts) in zip(layout, drawn):
      colours = [self._object_colour(rng, extremes)]
      if cls == 3:    # roof in a contrasting hue
        colours.append(self._object_colour(rng, np.concatenate([extremes, colours[:1]])))
      shade = None if light is None else self._shading(window, cy, cx, max(hy, hx), light)
      for part, colour in zip(parts, colours):
        canvas[(slice(None), *window)][:, part] = (
            colour[:, None] if shade is None else colour[:, None] * shade[part][None])

    # Box filter by summing the s*s strided views (much faster than a reshaped mean).
    image = canvas[:, ::s, ::s].copy()
    coverage = (owner[::s, ::s][None] == self._slots).astype(np.uint8)
    for a in range(s):
      for b in range(s):
        if a or b:
          image += canvas[:, a::s, b::s]
          coverage += owner[a::s, b::s][None] == self._slots
    image = (image * (255.0 / (s * s)) + 0.5).astype(np.uint8)
    image = np.ascontiguousarray(image.transpose(1, 2, 0))
    # A pixel goes to an object covering at least half of its supersamples; two can only tie
    # at exactly half, and then the front one keeps it, so the visible masks never overlap.
    masks = coverage * 2 >= s * s
    claimed = masks[n - 1].copy()
    for i in range(n - 2, -1, -1):
      masks[i] &= ~claimed
      claimed |= masks[i]
    masks = masks.astype(np.uint8)

    centres = np.zeros((k, 2), np.float32)
    class_ids = np.full((k,), -1, np.int32)
    for i, (cls, cy, cx, _, _) in enumerate(layout):
      centres[i] = (cy / self.height * 2 - 1, cx / self.width * 2 - 1)
      class_ids[i] = cls
    example = {"image": image, "masks": masks, "centres": centres, "class_ids": class_ids,
               "num_objects": np.int32(n)}
    if light is not None:
      example.update(light=light, horizon=np.float32(horizon))
    return example

  def _shading(self, window: tuple[slice, slice], cy: float, cx: float, size: float,
               light: np.ndarray) -> np.ndarray:
    """An object's shading factors on its window: 1 on the side facing the light, falling
    linearly along the light's direction to ``1 - SHADE_DEPTH`` on the far side."""
    dy = (self._ys[window[0]] - cy)[:, None]
    dx = (self._xs[window[1]] - cx)[None, :]
    toward = np.clip((dy * light[0] + dx * light[1]) / size, -1.0, 1.0)
    return (1.0 - SHADE_DEPTH * (1.0 - toward) / 2).astype(np.float32)

  def _shadows(self, layout: list, drawn: list, light: np.ndarray,
               horizon: float) -> np.ndarray:
    """Supersample mask ``(H*s, W*s)`` of the ground in shadow: every object's silhouette
    moved ``SHADOW_LENGTH`` of its size away from the light, below the horizon only."""
    s = self.supersample
    hs, ws = self.height * s, self.width * s
    shadow = np.zeros((hs, ws), bool)
    for (_, _, _, hy, hx), ((rows, cols), parts) in zip(layout, drawn):
      inside = np.logical_or.reduce(parts)
      oy, ox = (int(round(-v * SHADOW_LENGTH * max(hy, hx) * s)) for v in light)
      r0, c0 = rows.start + oy, cols.start + ox
      h, w = inside.shape
      a0, b0 = max(0, -r0), max(0, -c0)
      a1, b1 = min(h, hs - r0), min(w, ws - c0)
      if a1 > a0 and b1 > b0:
        shadow[r0 + a0:r0 + a1, c0 + b0:c0 + b1] |= inside[a0:a1, b0:b1]
    shadow[self._ys < horizon] = False
    return shadow
