"""Any TensorFlow Datasets dataset as a grain random-access source.

Opens ``tfds.data_source(name, split=..., data_dir=..., download=False)``: random access
over the dataset's ``array_record`` files, without TensorFlow. Nothing is downloaded at run
time: the dataset must already be prepared in array_record format, e.g. with
``tfds build NAME --file_format=array_record --data_dir=DIR``. Each example's image
(``image_key``, default ``"image"``; grey or RGBA become RGB) is centre-cropped and resized
like the folder source.

Tested with ``tfds.testing.mock_data(num_examples=...)``, which in tfds 4.9.10 also mocks
``tfds.data_source``: the default ``MockPolicy.AUTO`` falls back to ``USE_CODE`` (random
examples with the features declared by the dataset's builder class) when no metadata is
found, so registered datasets such as ``cifar10`` or ``mnist`` work without files.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxspatial.data.folder import array_to_pil, resize_center_crop
from jaxspatial.errors import UserError


class TfdsSource:
  """``source[i]`` -> ``{"image": uint8 (resolution, resolution, 3)}`` from a tfds split."""

  def __init__(self, name: str, *, resolution: int, split: str = "train",
               data_dir: str | None = None, image_key: str = "image"):
    import tensorflow_datasets as tfds   # deferred: ~0.3 s import, only needed for this source
    self.name, self.split, self.image_key = name, split, image_key
    self.resolution = int(resolution)
    where = data_dir or "the default tfds data_dir"
    try:
      self._source = tfds.data_source(name, split=split, data_dir=data_dir or None,
                                      download=False)
    except tfds.core.DatasetNotFoundError:
      raise UserError(f"unknown tfds dataset {name!r} (see `tfds.list_builders()`)") from None
    except (ValueError, NotImplementedError, AssertionError, OSError, KeyError) as e:
      reason = str(e).strip().splitlines()[0].rstrip(":") if str(e).strip() else type(e).__name__
      raise UserError(
          f"cannot open tfds dataset {name!r} split {split!r} in {where} as array_record "
          f"(prepare it with `tfds build {name} --file_format=array_record`): {reason}") from None
    if len(self._source) == 0:
      raise UserError(f"tfds dataset {name!r} split {split!r} is empty")
    example = self._source[0]
    if image_key not in example:
      raise UserError(f"tfds dataset {name!r} has no feature {image_key!r}; "
                      f"its features are {sorted(example)} (set data.image_key)")
    image = np.asarray(example[image_key])
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
      raise UserError(f"tfds feature {name}/{image_key} is not a uint8 image "
                      f"(dtype {image.dtype}, shape {image.shape})")

  def __len__(self) -> int:
    return len(self._source)

  def __repr__(self) -> str:
    return (f"TfdsSource({self.name!r}, split={self.split!r}, image_key={self.image_key!r}, "
            f"resolution={self.resolution}, examples={len(self)})")

  def __getitem__(self, index: int) -> dict[str, Any]:
    example = self._source[int(index)]
    return {"image": resize_center_crop(array_to_pil(example[self.image_key]), self.resolution)}
