"""Image folder and .zip sources: listing, resize/crop, corrupt files skipped and counted,
errors."""

import json
import logging
import pickle
import zipfile

import numpy as np
import pytest
from PIL import Image

from jaxspatial.cli import UserError
from jaxspatial.data.folder import (ImageFolderSource, ZipImageSource, open_image_source,
                                    resize_center_crop)


def _write_images(root):
  """Five readable images of assorted modes/sizes/formats, one garbage .png, one .txt."""
  rng = np.random.default_rng(0)
  (root / "sub" / "deeper").mkdir(parents=True)
  (root / ".hidden").mkdir()
  Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(root / "a.png")
  Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(root / "b.png")  # grey
  (root / "c.png").write_bytes(b"this is not a png at all")                             # corrupt
  Image.fromarray(rng.integers(0, 256, (48, 64, 4), dtype=np.uint8)).save(root / "sub" / "d.PNG")
  Image.fromarray(rng.integers(0, 256, (50, 30, 3), dtype=np.uint8)).save(root / "sub" / "e.jpg")
  Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
      root / "sub" / "deeper" / "f.bmp")
  Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(
      root / ".hidden" / "g.png")
  (root / "notes.txt").write_text("not an image")


EXPECTED = ["a.png", "b.png", "c.png", "sub/d.PNG", "sub/deeper/f.bmp", "sub/e.jpg"]


def _zip_folder(root, path):
  with zipfile.ZipFile(path, "w") as zf:
    for name in EXPECTED + ["notes.txt"]:
      zf.write(root / name, name)
    zf.writestr("__MACOSX/._a.png", b"resource fork")
  return path


def test_resize_center_crop_keeps_the_centred_square():
  x = np.zeros((20, 60, 3), np.uint8)
  x[:, :20] = (0, 255, 0)
  x[:, 20:40] = (255, 0, 0)
  x[:, 40:] = (0, 0, 255)
  out = resize_center_crop(Image.fromarray(x), 8)
  assert out.shape == (8, 8, 3) and out.dtype == np.uint8
  # Lanczos reads a little past the crop box, hence a few levels of bleed at the sides.
  np.testing.assert_allclose(out.reshape(-1, 3).mean(0), (255, 0, 0), atol=6)
  tall = resize_center_crop(Image.fromarray(np.full((64, 32), 77, np.uint8)), 16)
  assert tall.shape == (16, 16, 3) and np.all(np.abs(tall.astype(int) - 77) <= 1)


def test_folder_lists_sorted_recursively_and_skips_a_corrupt_file(tmp_path, caplog):
  _write_images(tmp_path)
  source = ImageFolderSource(tmp_path, 16)
  assert source.files == EXPECTED and len(source) == 6
  with caplog.at_level(logging.WARNING, logger="jaxspatial.data.folder"):
    examples = [source[i] for i in range(len(source))]
    again = source[2]
  items = [ex["image"] for ex in examples]
  for image in items:
    assert image.shape == (16, 16, 3) and image.dtype == np.uint8
  np.testing.assert_array_equal(items[2], items[3])   # c.png replaced by the next readable
  assert [int(ex["skipped"]) for ex in examples] == [0, 0, 1, 0, 0, 0]
  assert int(again["skipped"]) == 1 and source.corrupt_count == 1
  warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
  assert len(warnings) == 1 and "c.png" in warnings[0].getMessage()
  grey = items[1]
  assert np.array_equal(grey[..., 0], grey[..., 1]) and np.array_equal(grey[..., 0], grey[..., 2])


def test_zip_matches_folder_and_survives_pickling(tmp_path):
  root = tmp_path / "imgs"
  root.mkdir()
  _write_images(root)
  archive = _zip_folder(root, tmp_path / "imgs.zip")
  zsource = open_image_source(archive, 16)
  fsource = open_image_source(root, 16)
  assert isinstance(zsource, ZipImageSource) and isinstance(fsource, ImageFolderSource)
  assert zsource.files == EXPECTED
  for i in (0, 1, 3, 5):
    np.testing.assert_array_equal(zsource[i]["image"], fsource[i]["image"])
  np.testing.assert_array_equal(zsource[2]["image"], zsource[3]["image"])
  assert zsource.corrupt_count == 1
  clone = pickle.loads(pickle.dumps(zsource))   # as sent to a grain worker, handle open
  assert clone._zip is None
  np.testing.assert_array_equal(clone[4]["image"], fsource[4]["image"])


def test_user_errors(tmp_path):
  with pytest.raises(UserError, match="does not exist"):
    ImageFolderSource(tmp_path / "missing", 16)
  (tmp_path / "empty").mkdir()
  (tmp_path / "empty" / "readme.txt").write_text("no images here")
  with pytest.raises(UserError, match="no images"):
    ImageFolderSource(tmp_path / "empty", 16)
  (tmp_path / "fake.zip").write_bytes(b"not a zip")
  with pytest.raises(UserError, match="zip"):
    ZipImageSource(tmp_path / "fake.zip", 16)
  with zipfile.ZipFile(tmp_path / "texts.zip", "w") as zf:
    zf.writestr("a.txt", "text")
  with pytest.raises(UserError, match="no images"):
    ZipImageSource(tmp_path / "texts.zip", 16)
  (tmp_path / "bad").mkdir()
  (tmp_path / "bad" / "x.png").write_bytes(b"garbage")
  with pytest.raises(UserError, match="could be read"):
    ImageFolderSource(tmp_path / "bad", 16)[0]


def _labelled(root, n=4):
  """n images in dataset_tool's layout (00000/img0000000i.png) and its dataset.json."""
  (root / "00000").mkdir(parents=True)
  names = []
  for i in range(n):
    name = f"00000/img{i:08d}.png"
    Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root / name)
    names.append(name)
  return names


def test_dataset_json_labels_folder_and_zip(tmp_path):
  names = _labelled(tmp_path / "d")
  classes = [2, 0, 1, 2]
  (tmp_path / "d" / "dataset.json").write_text(json.dumps({"labels": [
      [n, c] for n, c in reversed(list(zip(names, classes)))]}))
  folder = ImageFolderSource(tmp_path / "d", 8)
  with zipfile.ZipFile(tmp_path / "d.zip", "w") as zf:
    for name in names + ["dataset.json"]:
      zf.write(tmp_path / "d" / name, name)
  for source in (folder, ZipImageSource(tmp_path / "d.zip", 8)):
    assert source.c_dim == 3
    got = [source[i] for i in range(4)]
    np.testing.assert_array_equal([g["label"] for g in got], np.eye(3)[classes])
    assert [int(g["image"][0, 0, 0]) for g in got] == [0, 40, 80, 120]
  (tmp_path / "d" / "dataset.json").write_text(json.dumps({"labels": [
      [n, [0.5, i]] for i, n in enumerate(names)]}))
  np.testing.assert_array_equal(ImageFolderSource(tmp_path / "d", 8)[3]["label"], [0.5, 3])
  (tmp_path / "d" / "dataset.json").write_text(json.dumps({"labels": None}))
  source = ImageFolderSource(tmp_path / "d", 8)
  assert source.c_dim == 0 and "label" not in source[0]


def test_dataset_json_errors(tmp_path):
  names = _labelled(tmp_path)
  (tmp_path / "dataset.json").write_text(json.dumps({"labels": [[names[0], 1]]}))
  with pytest.raises(UserError, match="no label for 3 of 4 images"):
    ImageFolderSource(tmp_path, 8)
  (tmp_path / "dataset.json").write_text("{not json")
  with pytest.raises(UserError, match="not a dataset_tool labels file"):
    ImageFolderSource(tmp_path, 8)
  (tmp_path / "dataset.json").write_text(json.dumps({"labels": [[n, "cat"] for n in names]}))
  with pytest.raises(UserError, match="class indices"):
    ImageFolderSource(tmp_path, 8)
