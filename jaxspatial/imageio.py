"""Image files at the API boundary: [-1, 1] float NHWC <-> uint8 PNG, image grids, binary
mask files and the commands' ``--part IMAGE:MASK`` specs."""

from __future__ import annotations

import pathlib

import numpy as np
from PIL import Image

from jaxspatial.errors import UserError, existing_file


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
  path = existing_file(path, "an image file")
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


# Channel counts of the Pillow modes that are not RGB images (a palette "P" image is RGB).
CHANNELS = {"1": 1, "L": 1, "LA": 2, "I": 1, "I;16": 1, "F": 1, "RGBA": 4, "CMYK": 4, "RGBa": 4,
            "La": 2, "PA": 2}


def rgb_target(im: Image.Image, resolution: int, name: str) -> tuple[np.ndarray, str | None]:
  """A decoded image -> ((R, R, 3) float32 in [-1, 1], a notice if it was cropped/resized).

  A generator's target must be RGB: grey, alpha or CMYK images are a one-line
  :class:`UserError` naming ``name``; another size is centre-cropped to a square and resized
  (Lanczos), as stylegan2-ada's projector does, and the notice says so.
  """
  if im.mode in CHANNELS:
    raise UserError(f"{name} has {CHANNELS[im.mode]} channel(s) ({im.mode}); the generator "
                    "makes RGB images: convert it to RGB first")
  im = im.convert("RGB")
  notice = None
  w, h = im.size
  if (w, h) != (resolution, resolution):
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2))
    im = im.resize((resolution, resolution), Image.LANCZOS)
    notice = (f"{name} is {w}x{h}; centre-cropped to {s}x{s} and resized to "
              f"{resolution}x{resolution}, the generator's size")
  return from_uint8(np.asarray(im)), notice


# --------------------------------------------------------------------------- masks and parts


def read_mask(path: str | pathlib.Path) -> np.ndarray:
  """A binary mask file (white = known pixel) -> (H, W, 1) float32 in {0, 1}.

  Grey levels other than black and white (e.g. antialiased brush strokes) are a one-line
  :class:`UserError`: a mask says exactly which pixels to keep.
  """
  path = existing_file(path, "an image file")
  try:
    with Image.open(path) as im:
      arr = np.asarray(im.convert("L"))
  except (OSError, ValueError) as e:
    raise UserError(f"{path}: not a readable image ({e})") from None
  levels = np.unique(arr)
  if not (np.isin(levels, (0, 255)).all() or np.isin(levels, (0, 1)).all()):
    raise UserError(f"{path} is not a binary mask: it has {len(levels)} grey levels; use only "
                    "black (unknown) and white (known), e.g. save it without antialiasing")
  return (arr > 0).astype(np.float32)[..., None]


def read_pair(image_path: str | pathlib.Path, mask_path: str | pathlib.Path | None,
              resolution: int) -> tuple[np.ndarray, np.ndarray]:
  """An image and its binary mask (None = all known) -> ((1, R, R, 3), (1, R, R, 1)).

  Image and mask must have the same size; a pair of another size than the model's R is
  resized (image Lanczos, mask nearest, so it stays binary).
  """
  x = load_image(image_path)
  h, w = x.shape[:2]
  m = np.ones((h, w, 1), np.float32) if mask_path is None else read_mask(mask_path)
  if m.shape[:2] != (h, w):
    raise UserError(f"mask {mask_path} is {m.shape[1]}x{m.shape[0]} px but image {image_path} is "
                    f"{w}x{h} px; a mask must have its image's size")
  if (h, w) != (resolution, resolution):
    x = load_image(image_path, resolution)
    m = np.asarray(Image.fromarray(m[..., 0].astype(np.uint8) * 255).resize(
        (resolution, resolution), Image.NEAREST), np.float32)[..., None] / 255.0
  return x[None], m[None]


def parse_part(spec: str, resolution: int) -> tuple[np.ndarray, np.ndarray]:
  """``IMAGE:MASK`` (or just ``IMAGE``: all pixels) -> one layer of :func:`read_pair`."""
  image_path, sep, mask_path = spec.rpartition(":")
  if not sep:
    image_path, mask_path = spec, ""
  if not image_path:
    raise UserError(f"--part {spec!r}: expected IMAGE:MASK, e.g. a.png:mask_a.png")
  return read_pair(image_path, mask_path or None, resolution)


def save_image(path: str | pathlib.Path, x: np.ndarray) -> pathlib.Path:
  """Writes [-1, 1] images as a PNG: one (H, W, 3) / (1, H, W, 3) image as it is, a batch
  (n, H, W, 3) as a row."""
  x = np.asarray(x)
  pixels = to_uint8(x[None] if x.ndim == 3 else x)
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(pixels[0] if len(pixels) == 1 else grid(pixels, cols=len(pixels))
                  ).save(path)
  return path
