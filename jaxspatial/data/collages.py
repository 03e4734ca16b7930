"""Collages for latent-regression compositing (Chai, Wulff & Isola 2021, Eq. 4).

A collage pastes layers in order, later layers over earlier ones::

    x_clg = m_K ⊙ x_K + (1 − m_K) ⊙ ( ... (m_1 ⊙ x_1 + (1 − m_1) ⊙ 0) ... ),   m = ∪_k m_k

starting from 0 (mid-grey in [-1, 1], as the official ``Compositer``); the regressor sees only
the collage and the union mask m, never the individual layers (:func:`paste_layers`).

On the embedded shapes dataset the ground-truth object masks replace the paper's segmentation
network: :func:`automatic_collages` takes the background (pixels of no object) of one scene and
then objects of other scenes, in order. Mask and ``--part IMAGE:MASK`` files are read by
:mod:`jaxspatial.imageio`.

Arrays: images (n, H, W, 3) float32 in [-1, 1]; masks (n, H, W, 1) float32 in {0, 1}.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from jaxspatial import imageio

Layer = tuple[np.ndarray, np.ndarray]
"""(images (n, H, W, 3), masks (n, H, W, 1))."""


def paste_layers(parts: Sequence[Layer]) -> tuple[np.ndarray, np.ndarray]:
  """Pastes ``parts`` in order onto a zero canvas -> (collage (n, H, W, 3), union (n, H, W, 1)).

  Shapes are checked by the caller (:meth:`jaxspatial.api.regressor.RegressorModel.composite`).
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


def alpha_blend(collages: Collages, radius: int) -> np.ndarray:
  """The collage α-blended instead of pasted (Chai et al. 2021, §4.3's baseline): the same
  layers in the same order onto the zero canvas, each with its mask feathered into
  ``α_k`` = :func:`feather` ``(m_k, radius)`` (about ½ on the seam, 1 from ``radius`` pixels
  inside, 0 from ``radius`` pixels outside): ``canvas = α_k ⊙ x_k + (1 − α_k) ⊙ canvas``.
  A layer's pixels just outside its own mask come from its source image, as a soft paste of
  real photographs would. ``radius = 0`` is :func:`paste_layers`."""
  out = np.zeros(collages.collage.shape, np.float32)
  for p in range(collages.part_images.shape[1]):
    alpha = feather(collages.part_masks[:, p], radius)
    out = alpha * collages.part_images[:, p] + (1.0 - alpha) * out
  return out.astype(np.float32)


def feather(masks: np.ndarray, radius: int) -> np.ndarray:
  """(n, H, W, 1) binary masks -> soft α in [0, 1]: the mean of the mask over the
  ``(2 radius + 1)²`` window around each pixel (zero outside the image)."""
  m = np.asarray(masks, np.float32)
  if radius <= 0:
    return m
  k = 2 * radius + 1
  padded = np.pad(m, ((0, 0), (radius, radius), (radius, radius), (0, 0)))
  c = np.cumsum(np.cumsum(np.pad(padded, ((0, 0), (1, 0), (1, 0), (0, 0))), 1), 2)
  h, w = m.shape[1:3]
  total = c[:, k:k + h, k:k + w] - c[:, :h, k:k + w] - c[:, k:k + h, :w] + c[:, :h, :w]
  return (total / (k * k)).astype(np.float32)


def fill_holes(collages: Collages) -> np.ndarray:
  """The paper's "RGB Fill" input (Chai et al. 2021, Supp. A.2.4): the collage with every
  unknown pixel (outside the union mask) set to the mean colour of its background layer's
  (layer 0's) pasted pixels -> (n, H, W, 3). An all-hidden background fills with 0 (grey)."""
  bg_x, bg_m = collages.part_images[:, 0], collages.part_masks[:, 0]
  area = bg_m.sum(axis=(1, 2))                                              # (n, 1)
  mean = (bg_x * bg_m).sum(axis=(1, 2)) / np.maximum(area, 1.0)             # (n, 3)
  return np.where(collages.mask > 0, collages.collage, mean[:, None, None, :]).astype(np.float32)


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
                    seed: int = 0, max_objects: int = 4, lighting: bool = False) -> Collages:
  """:func:`automatic_collages` over the first ``pool`` scenes of the embedded shapes dataset
  (``jaxspatial.data.shapes.ShapesSource(resolution, seed=seed, lighting=lighting)``)."""
  from jaxspatial.data.shapes import ShapesSource
  source = ShapesSource(resolution, max_objects=max_objects, seed=seed, lighting=lighting)
  scenes = [source[i] for i in range(pool)]
  images = imageio.from_uint8(np.stack([s["image"] for s in scenes]))
  masks = np.stack([s["masks"] for s in scenes]).transpose(0, 2, 3, 1)   # (N, K, H, W) -> NHWK
  return automatic_collages(images, masks, n, objects=objects, seed=seed)
