"""tfds source through ``tfds.data_source``, with tfds's mock data (no files, no download)."""

import numpy as np
import pytest
import tensorflow_datasets as tfds

from jaxspatial.cli import UserError
from jaxspatial.data.pipeline import default_data_config, make_iterator
from jaxspatial.data.tfds import TfdsSource


def test_mock_dataset_images_are_resized_to_rgb():
  with tfds.testing.mock_data(num_examples=6):
    grey = TfdsSource("mnist", resolution=8)            # (28, 28, 1) uint8
    colour = TfdsSource("cifar10", resolution=16, split="test")
  assert len(grey) == 6 and len(colour) == 6
  g = grey[3]["image"]
  assert g.shape == (8, 8, 3) and g.dtype == np.uint8
  assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])
  assert colour[5]["image"].shape == (16, 16, 3)


def test_pipeline_reads_tfds():
  cfg = default_data_config()
  cfg.source, cfg.name, cfg.resolution, cfg.prefetch = "tfds", "cifar10", 16, 0
  with tfds.testing.mock_data(num_examples=10):
    it = make_iterator(cfg, global_batch_size=4, seed=0, process_index=0, process_count=1)
    batch = next(it)
    it.close()
  assert set(batch) == {"image"}
  assert batch["image"].shape == (4, 16, 16, 3) and batch["image"].dtype == np.float32
  assert -1 <= batch["image"].min() and batch["image"].max() <= 1


def test_errors_are_one_line_user_errors():
  with pytest.raises(UserError, match="unknown tfds dataset"):
    TfdsSource("no_such_dataset_xyz", resolution=16)
  with tfds.testing.mock_data(num_examples=2):
    with pytest.raises(UserError, match="no feature 'img'"):
      TfdsSource("cifar10", resolution=16, image_key="img")
    with pytest.raises(UserError, match="not a uint8 image"):
      TfdsSource("cifar10", resolution=16, image_key="label")
