"""Lit shapes scenes (``data.lighting``): one light direction and one horizon per scene, read
back from the pixels -- every object's shading gradient points at the scene's light, every
shadow falls away from it and only on the ground, the sky/ground boundary is one row."""

import numpy as np
import pytest

from jaxspatial.data import pipeline
from jaxspatial.data.shapes import CLASS_NAMES, ShapesSource

SCENES = range(30)


def _dilate(m: np.ndarray) -> np.ndarray:
  p = np.pad(m, 1)
  return p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]


def _erode(m: np.ndarray) -> np.ndarray:
  """Pixels whose four neighbours are inside too (the image border counts as outside: an
  object's edge pixel there is a blend with the background)."""
  p = np.pad(m, 1)
  return p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]


def _shift(m: np.ndarray, dy: int, dx: int) -> np.ndarray:
  out = np.zeros_like(m)
  ys, xs = np.nonzero(m)
  ys, xs = ys + dy, xs + dx
  ok = (ys >= 0) & (ys < m.shape[0]) & (xs >= 0) & (xs < m.shape[1])
  out[ys[ok], xs[ok]] = True
  return out


def _background_and_shadow(ex: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(brightness, background pixels away from objects' edges, shadowed background): the
  background is one colour per row, so shadow is whatever is darker than its row's brightest
  (by more than rounding; a shadow's edge shades part of a pixel)."""
  lum = ex["image"].astype(np.float64).sum(-1)
  objects = ex["masks"][:int(ex["num_objects"])].astype(bool).any(0)
  background = ~_dilate(objects)
  brightest = np.array([lum[r][background[r]].max() if background[r].any() else np.inf
                        for r in range(lum.shape[0])])
  return lum, background, background & (lum < brightest[:, None] - 3)


def test_lit_scenes_are_deterministic_and_carry_their_light_and_horizon():
  a, b = ShapesSource(32, seed=3, lighting=True), ShapesSource(32, seed=3, lighting=True)
  for i in (0, 7):
    for key, value in a[i].items():
      np.testing.assert_array_equal(value, b[i][key])
  lights = np.stack([a[i]["light"] for i in SCENES])
  np.testing.assert_allclose(np.linalg.norm(lights, axis=1), 1.0, rtol=1e-6)
  assert (lights[:, 0] < 0).all()                         # from the sky
  assert (lights[:, 1] < 0).any() and (lights[:, 1] > 0).any()
  horizons = np.array([a[i]["horizon"] for i in SCENES])
  assert ((horizons >= 0.45 * 32) & (horizons <= 0.75 * 32)).all() and np.ptp(horizons) > 4
  flat = ShapesSource(32, seed=3)[0]
  assert "light" not in flat and "horizon" not in flat
  assert repr(a).endswith("lighting=True)")


def test_every_object_is_shaded_towards_the_one_light():
  """A plane fitted to each object's brightness (away from its edges) rises towards the
  scene's light: one light direction shades every object. Towers are left out (two colours)."""
  src = ShapesSource(32, lighting=True)
  fitted = 0
  for i in SCENES:
    ex = src[i]
    lum = ex["image"].astype(np.float64).sum(-1)
    for k in range(int(ex["num_objects"])):
      inner = _erode(ex["masks"][k].astype(bool))
      if CLASS_NAMES[ex["class_ids"][k]] == "tower" or inner.sum() < 12:
        continue
      ys, xs = np.nonzero(inner)
      design = np.stack([np.ones_like(ys), ys, xs], 1).astype(np.float64)
      gradient = np.linalg.lstsq(design, lum[ys, xs], rcond=None)[0][1:]
      cos = gradient @ ex["light"] / np.linalg.norm(gradient)
      assert cos > 0.97, (i, k, gradient, ex["light"])
      fitted += 1
  assert fitted > 40


def test_every_shadow_falls_away_from_the_light_and_on_the_ground():
  """Beside the objects, the side away from the light is in shadow and the side towards it
  mostly not (pooled over a scene's objects: another object's shadow may cover a near side);
  mirroring the light left-right breaks this, so it measures the direction. No shadow lies
  above the horizon. 64 px: shadows several pixels long."""
  src = ShapesSource(64, lighting=True)
  for i in SCENES:
    ex = src[i]
    _, background, shadow = _background_and_shadow(ex)
    assert not shadow[:int(np.floor(ex["horizon"]))].any(), i
    below = background.copy()
    below[:int(np.ceil(ex["horizon"])) + 1] = False
    masks = ex["masks"][:int(ex["num_objects"])].astype(bool)
    shares = []
    for light in (ex["light"], ex["light"] * np.array([1, -1])):
      dy, dx = (int(round(3 * v)) for v in light)
      far = np.logical_or.reduce([_shift(m, -dy, -dx) for m in masks]) & below
      near = np.logical_or.reduce([_shift(m, dy, dx) for m in masks]) & below
      shares.append((shadow[far].mean() if far.any() else 1.0,
                     shadow[near].mean() if near.any() else 0.0))
    (far, near), (mirror_far, mirror_near) = shares
    assert far > 0.5 and far > near + 0.1, (i, far, near)
    assert (mirror_far - mirror_near) < (far - near), i


def test_one_horizon_row_across_the_scene():
  """Outside objects and shadows every row of a lit scene is one colour, so the sky/ground
  boundary is the same row in every column; the largest step between rows sits at the
  ``horizon`` the example reports."""
  src = ShapesSource(32, lighting=True)
  for i in SCENES:
    ex = src[i]
    lum, background, shadow = _background_and_shadow(ex)
    plain = background & ~_dilate(shadow)
    image = ex["image"].astype(np.int64)
    rows = [r for r in range(32) if plain[r].sum() >= 2]
    for r in rows:
      assert np.ptp(image[r][plain[r]], axis=0).max() <= 2, (i, r)
    means = np.array([lum[r][plain[r]].mean() for r in rows])
    steps = np.abs(np.diff(means)) / np.maximum(np.diff(rows), 1)
    boundary = rows[int(np.argmax(steps)) + 1]
    assert abs(boundary - ex["horizon"]) <= 1.0, (i, boundary, ex["horizon"])


def test_data_config_lighting_key():
  """``--config.data.lighting=true`` reaches the source; the key is a bool, so ml_collections
  refuses anything else before the pipeline sees it."""
  cfg = pipeline.default_data_config()
  cfg.resolution = 16
  assert cfg.lighting is False and not pipeline.make_source(cfg).lighting
  cfg.lighting = True
  assert pipeline.make_source(cfg).lighting
  with pytest.raises(TypeError):
    cfg.lighting = "yes"
