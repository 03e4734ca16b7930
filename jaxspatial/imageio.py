"""Image files at the API boundary: [-1, 1] float NHWC <-> uint8 PNG, and image grids."""

from __future__ import annotations

import pathlib

import numpy as np
from PIL import Image

from jaxspatial.cli import UserError


def to_uint8(x: np.ndarray) -> np.ndarray:
  """[-1, 1] float (..., 3) -> uint8 [0, 255] (clipped, rounded)."""
  return np.clip(np.rint((np.asarray(x, np.float32) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def from_uint8(x: np.ndarray) -> np.ndarray:
  """uint8 [0, 255] -> float32 [-1, 1]."""
  return np.asarray(x, np.float32) / 127.5 - 1.0


def grid(images: np.ndarray, cols: int | None = None, pad: int = 2,
         pad_value: int = 255) -> np.ndarray:
  """(n, H, W, C) uint8 -> one (rows*(H+pad)+pad, cols*(W+pad)+pad, C) uint8 mosaic."""
  images = np.asarray(images)
  n, h, w, c = images.shape
  cols = cols or int(np.ceil(np.sqrt(n)))
  rows = int(np.ceil(n / cols))
  out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), pad_value, np.uint8)
  for i, img in enumerate(images):
    r, k = divmod(i, cols)
    out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + k * (w + pad):pad + k * (w + pad) + w] = img
  return out


def save_grid(path: str | pathlib.Path, images: np.ndarray, cols: int | None = None,
              upscale_to: int = 0) -> pathlib.Path:
  """Saves [-1, 1] float images (n, H, W, 3) as a PNG grid; small images are upscaled
  (nearest) so each tile is at least ``upscale_to`` px."""
  images = to_uint8(images)
  h = images.shape[1]
  if upscale_to and h < upscale_to:
    f = int(np.ceil(upscale_to / h))
    images = images.repeat(f, axis=1).repeat(f, axis=2)
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(grid(images, cols)).save(path)
  return path


def load_image(path: str | pathlib.Path, resolution: int | None = None,
               mode: str = "RGB") -> np.ndarray:
  """Reads an image file as float32 (H, W, C) in [-1, 1] (``mode="L"`` gives (H, W, 1) in [0, 1]
  scaled to [-1, 1]); optionally resized (Lanczos) to ``resolution``."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise UserError(f"{path}: no such file")
  try:
    with Image.open(path) as im:
      im = im.convert(mode)
      if resolution and im.size != (resolution, resolution):
        im = im.resize((resolution, resolution), Image.LANCZOS)
      arr = np.asarray(im)
  except (OSError, ValueError) as e:
    raise UserError(f"{path}: not a readable image ({e})") from None
  if arr.ndim == 2:
    arr = arr[..., None]
  return from_uint8(arr)
