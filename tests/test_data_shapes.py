"""The embedded shapes dataset: determinism, field layout, masks/centres that match the image."""

import numpy as np
import pytest

from jaxspatial.benchmarks.data import bench_shapes
from jaxspatial.data.shapes import CLASS_NAMES, ShapesSource


def _erode(m: np.ndarray) -> np.ndarray:
  p = np.pad(m, 1)
  return p[1:-1, 1:-1] & p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]


def _ring(m: np.ndarray) -> np.ndarray:
  p = np.pad(m, 1)
  dilated = p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
  return dilated & ~m


def test_same_index_same_scene_and_different_index_different():
  a, b = ShapesSource(32, seed=7), ShapesSource(32, seed=7)
  for i in (0, 5, 999_999):
    x, y = a[i], b[i]
    for key in x:
      np.testing.assert_array_equal(x[key], y[key])
  assert not np.array_equal(a[5]["image"], a[6]["image"])
  assert not np.array_equal(a[5]["image"], ShapesSource(32, seed=8)[5]["image"])
  np.testing.assert_array_equal(a[-1]["image"], a[len(a) - 1]["image"])
  with pytest.raises(IndexError):
    a[len(a)]


def test_fields_shapes_dtypes_and_padding():
  k = 4
  source = ShapesSource((24, 40), max_objects=k, length=50)
  assert len(source) == 50
  counts = set()
  for i in range(40):
    ex = source[i]
    n = int(ex["num_objects"])
    counts.add(n)
    assert ex["image"].shape == (24, 40, 3) and ex["image"].dtype == np.uint8
    assert ex["masks"].shape == (k, 24, 40) and ex["masks"].dtype == np.uint8
    assert ex["centres"].shape == (k, 2) and ex["centres"].dtype == np.float32
    assert ex["class_ids"].shape == (k,) and ex["class_ids"].dtype == np.int32
    assert ex["num_objects"].dtype == np.int32 and 1 <= n <= k
    assert set(np.unique(ex["masks"])) <= {0, 1}
    assert np.all((ex["class_ids"][:n] >= 0) & (ex["class_ids"][:n] < len(CLASS_NAMES)))
    assert np.all(ex["class_ids"][n:] == -1)
    assert np.all(ex["masks"][n:] == 0) and np.all(ex["centres"][n:] == 0)
    assert np.all(np.abs(ex["centres"][:n]) < 1)
    assert ex["masks"].sum(axis=0).max() <= 1, "visible masks must not overlap"
    assert np.all(ex["masks"][:n].sum(axis=(1, 2)) > 0), "every object stays visible"
  assert counts == set(range(1, k + 1))


def test_num_objects_option_and_all_classes_occur():
  source = ShapesSource(16, max_objects=3, num_objects=3)
  classes = set()
  for i in range(60):
    ex = source[i]
    assert ex["num_objects"] == 3 and np.all(ex["class_ids"] >= 0)
    classes.update(ex["class_ids"].tolist())
  assert classes == set(range(len(CLASS_NAMES)))
  with pytest.raises(ValueError):
    ShapesSource(16, max_objects=3, num_objects=4)


def test_centre_is_the_bounding_box_centre_of_a_lone_object():
  h = w = 32
  source = ShapesSource(h, num_objects=1)
  for i in range(40):
    ex = source[i]
    ys, xs = np.nonzero(ex["masks"][0])
    box_centre = np.array([(ys.min() + ys.max() + 1) / h - 1, (xs.min() + xs.max() + 1) / w - 1])
    # Pixel-centre convention: within one pixel (2/H in [-1, 1] units) of the mask's box.
    np.testing.assert_allclose(ex["centres"][0], box_centre, atol=2 / h)


def test_mask_pixels_differ_from_the_background_around_them():
  source = ShapesSource(32, num_objects=2)
  for i in range(30):
    ex = source[i]
    image = ex["image"].astype(np.float32)
    for m in ex["masks"][:2].astype(bool):
      inner, ring = _erode(m), _ring(m) & (ex["masks"].sum(0) == 0)
      if inner.sum() < 4 or ring.sum() < 4:
        continue
      contrast = np.linalg.norm(np.median(image[inner], 0) - np.median(image[ring], 0))
      assert contrast > 30, (i, contrast)
      # Flat colours: the interior is (nearly) one colour except a tower's roof.
      assert np.median(np.abs(image[inner] - np.median(image[inner], 0))) < 2


@pytest.mark.slow
def test_bench_shapes_table():
  """Smoke test at tiny size: the row's fields (rates are the benchmark's job)."""
  result = bench_shapes(resolution=16, n=32, batch_size=8)
  assert result["resolution"] == 16
  assert {"images", "batch_size", "render_images_per_s", "render_images_per_cpu_s",
          "pipeline_images_per_s"} <= set(result)
  # No XLA program, so no invented FLOP rate: n/a, and the reason as the table's note.
  assert result["GFLOP/s"] == result["% of peak"] == "n/a" and "host" in result["_note"]
