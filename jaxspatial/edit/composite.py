"""Collages for latent-regression compositing (Chai, Wulff & Isola 2021, Eq. 4).

A collage pastes layers in order, later layers over earlier ones::

    x_clg = m_K ⊙ x_K + (1 − m_K) ⊙ ( ... (m_1 ⊙ x_1 + (1 − m_1) ⊙ 0) ... ),   m = ∪_k m_k

starting from 0 (mid-grey in [-1, 1], as the official ``Compositer``); the regressor sees only
the collage and the union mask m, never the individual layers.

On the embedded shapes dataset the ground-truth object masks replace the paper's segmentation
network: :func:`automatic_collages` takes the background (pixels of no object) of one scene and
then objects of other scenes, in order. Also here: the file side of the commands (``--part
IMAGE:MASK`` specs, binary mask files).

Arrays: images (n, H, W, 3) float32 in [-1, 1]; masks (n, H, W, 1) float32 in {0, 1}.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Sequence

import numpy as np
from PIL import Image

from jaxspatial import imageio
from jaxspatial.cli import UserError

Layer = tuple[np.ndarray, np.ndarray]
"""(images (n, H, W, 3), masks (n, H, W, 1))."""


def paste_layers(parts: Sequence[Layer]) -> tuple[np.ndarray, np.ndarray]:
  """Pastes ``parts`` in order onto a zero canvas -> (collage (n, H, W, 3), union (n, H, W, 1)).

  Shapes are checked by the caller (:meth:`jaxspatial.regressor.RegressorModel.composite`).
  """
  images, masks = parts[0]
  collage = np.zeros(np.shape(images), np.float32)
  union = np.zeros(np.shape(masks), np.float32)
  for images, masks in parts:
    m = np.asarray(masks, np.float32)
    collage = m * np.asarray(images, np.float32) + (1.0 - m) * collage
    union = np.maximum(union, m)
  return collage, union


@dataclasses.dataclass
class Collages:
  """A batch of collages and the layers they were pasted from (P layers each)."""
  part_images: np.ndarray   # (n, P, H, W, 3)
  part_masks: np.ndarray    # (n, P, H, W, 1)
  collage: np.ndarray       # (n, H, W, 3)
  mask: np.ndarray          # (n, H, W, 1): union of the part masks

  @property
  def parts(self) -> list[Layer]:
    """The layers as a ``composite(parts)`` argument: P pairs of (n, ...) arrays."""
    return [(self.part_images[:, p], self.part_masks[:, p])
            for p in range(self.part_images.shape[1])]


def automatic_collages(images: np.ndarray, object_masks: np.ndarray, n: int, *,
                       objects: int = 2, seed: int = 0) -> Collages:
  """``n`` collages from a pool of scenes with ground-truth object masks.

  Each collage: layer 0 is the background (the pixels of no object) of a random scene; layers
  1..``objects`` are one random object each from other, distinct random scenes, pasted in that
  order. Scenes and objects are drawn with ``numpy.random.default_rng(seed)``.

  Args:
    images: (N, H, W, 3) scenes in [-1, 1], N >= objects + 1.
    object_masks: (N, H, W, K) in {0, 1}; an all-zero slot is no object.
    n: number of collages. objects: object layers per collage.
  """
  images = np.asarray(images, np.float32)
  object_masks = np.asarray(object_masks, np.float32)
  pool = images.shape[0]
  if object_masks.shape[:3] != images.shape[:3]:
    raise ValueError(f"object masks {object_masks.shape} do not match images {images.shape}")
  if pool < objects + 1:
    raise ValueError(f"need at least {objects + 1} scenes for {objects} object layers, got {pool}")
  present = object_masks.reshape(pool, -1, object_masks.shape[-1]).max(axis=1) > 0   # (N, K)
  with_objects = np.flatnonzero(present.any(axis=1))
  if len(with_objects) < objects:
    raise ValueError(f"only {len(with_objects)} scenes have objects; {objects} needed")
  background = 1.0 - object_masks.max(axis=-1, keepdims=True)                         # (N,H,W,1)
  rng = np.random.default_rng(seed)
  part_images, part_masks = [], []
  for _ in range(n):
    bg = int(rng.integers(pool))
    donors = rng.choice(np.setdiff1d(with_objects, [bg]) if len(with_objects) > objects
                        else with_objects, size=objects, replace=False)
    layers_x, layers_m = [images[bg]], [background[bg]]
    for s in donors:
      k = int(rng.choice(np.flatnonzero(present[s])))
      layers_x.append(images[s])
      layers_m.append(object_masks[s, :, :, k:k + 1])
    part_images.append(np.stack(layers_x))
    part_masks.append(np.stack(layers_m))
  part_images, part_masks = np.stack(part_images), np.stack(part_masks)
  collage, union = paste_layers([(part_images[:, p], part_masks[:, p])
                                 for p in range(part_images.shape[1])])
  return Collages(part_images, part_masks, collage, union)


def shapes_collages(n: int, resolution: int, *, objects: int = 2, pool: int = 64,
                    seed: int = 0, max_objects: int = 4) -> Collages:
  """:func:`automatic_collages` over the first ``pool`` scenes of the embedded shapes dataset
  (``jaxspatial.data.shapes.ShapesSource(resolution, seed=seed)``)."""
  from jaxspatial.data.shapes import ShapesSource
  source = ShapesSource(resolution, max_objects=max_objects, seed=seed)
  scenes = [source[i] for i in range(pool)]
  images = imageio.from_uint8(np.stack([s["image"] for s in scenes]))
  masks = np.stack([s["masks"] for s in scenes]).transpose(0, 2, 3, 1)   # (N, K, H, W) -> NHWK
  return automatic_collages(images, masks, n, objects=objects, seed=seed)


# --------------------------------------------------------------------------- files


def read_mask(path: str | pathlib.Path) -> np.ndarray:
  """A binary mask file (white = known pixel) -> (H, W, 1) float32 in {0, 1}.

  Grey levels other than black and white (e.g. antialiased brush strokes) are a one-line
  :class:`UserError`: a mask says exactly which pixels to keep.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise UserError(f"{path}: no such file")
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
              resolution: int) -> Layer:
  """An image and its binary mask (None = all known) -> ((1, R, R, 3), (1, R, R, 1)).

  Image and mask must have the same size; a pair of another size than the model's R is
  resized (image Lanczos, mask nearest, so it stays binary).
  """
  x = imageio.load_image(image_path)
  h, w = x.shape[:2]
  m = np.ones((h, w, 1), np.float32) if mask_path is None else read_mask(mask_path)
  if m.shape[:2] != (h, w):
    raise UserError(f"mask {mask_path} is {m.shape[1]}x{m.shape[0]} px but image {image_path} is "
                    f"{w}x{h} px; a mask must have its image's size")
  if (h, w) != (resolution, resolution):
    x = imageio.load_image(image_path, resolution)
    m = np.asarray(Image.fromarray(m[..., 0].astype(np.uint8) * 255).resize(
        (resolution, resolution), Image.NEAREST), np.float32)[..., None] / 255.0
  return x[None], m[None]


def parse_part(spec: str, resolution: int) -> Layer:
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
  pixels = imageio.to_uint8(x[None] if x.ndim == 3 else x)
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(pixels[0] if len(pixels) == 1 else imageio.grid(pixels, cols=len(pixels))
                  ).save(path)
  return path
