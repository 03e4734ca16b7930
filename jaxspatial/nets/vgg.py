"""torchvision VGG16 and AlexNet as Flax Linen modules (NHWC).

Parameter names follow torchvision's ``features.<i>`` indices (``features/conv<i>``), so the
converter's key map is mechanical and LPIPS can reuse the same backbone parameters.

* :class:`VGG16Features` -> the five LPIPS taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
  (torchvision ``features`` indices 3, 8, 15, 22, 29).
* :class:`VGG16` -> fc2 *before* its ReLU (``classifier[:4]``), the 4096-d PRDC feature, for a
  224x224 ImageNet-normalised input. torchvision flattens pool5 NCHW (index ``c*49 + h*7 + w``);
  here pool5 is flattened NHWC and the converter permutes ``classifier.0.weight`` to match.
* :class:`AlexNetFeatures` -> the five LPIPS taps, ReLU outputs of conv1..conv5.

:func:`preprocess` is the 224-px path of :func:`jaxspatial.nets.vgg16_features`: bilinear
resize (half-pixel, no antialias) then ImageNet normalisation ``((x + 1)/2 - mean) / std``.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

PRECISION = jax.lax.Precision.HIGHEST
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INPUT_SIZE = 224
FEATURE_DIM = 4096

# torchvision vgg16 ``features``: (index, out channels) of each 3x3/pad 1 conv; a 2x2/2 max pool
# follows the last conv of each of the five stages.
VGG16_STAGES: tuple[tuple[tuple[int, int], ...], ...] = (
    ((0, 64), (2, 64)),
    ((5, 128), (7, 128)),
    ((10, 256), (12, 256), (14, 256)),
    ((17, 512), (19, 512), (21, 512)),
    ((24, 512), (26, 512), (28, 512)),
)
# torchvision alexnet ``features``: (index, out channels, kernel, stride, padding); a 3x3/2 max
# pool precedes conv 3 and conv 6.
ALEXNET_CONVS: tuple[tuple[int, int, int, int, int], ...] = (
    (0, 64, 11, 4, 2), (3, 192, 5, 1, 2), (6, 384, 3, 1, 1), (8, 256, 3, 1, 1), (10, 256, 3, 1, 1))


def preprocess(images: jax.Array) -> jax.Array:
  """(n, H, W, 3) in [-1, 1] -> (n, 224, 224, 3) ImageNet-normalised ``((x+1)/2 - mean)/std``."""
  n, h, w, c = images.shape
  images = images.astype(jnp.float32)
  if (h, w) != (INPUT_SIZE, INPUT_SIZE):
    images = jax.image.resize(images, (n, INPUT_SIZE, INPUT_SIZE, c), "bilinear", antialias=False)
  x01 = (images + 1.0) * 0.5
  return (x01 - jnp.asarray(IMAGENET_MEAN, jnp.float32)) / jnp.asarray(IMAGENET_STD, jnp.float32)


def _conv(features: int, kernel: int, stride: int, padding: int, name: str) -> nn.Conv:
  return nn.Conv(features, (kernel, kernel), strides=stride, padding=((padding, padding),) * 2,
                 precision=PRECISION, name=name)


class VGG16Features(nn.Module):
  """(n, H, W, 3) normalised -> taps [relu1_2, relu2_2, relu3_3, relu4_3, relu5_3], each
  (n, h, w, C)."""

  @nn.compact
  def __call__(self, x: jax.Array) -> list[jax.Array]:
    taps = []
    for s, stage in enumerate(VGG16_STAGES):
      if s > 0:
        x = nn.max_pool(x, (2, 2), strides=(2, 2))
      for index, ch in stage:
        x = nn.relu(_conv(ch, 3, 1, 1, f"conv{index}")(x))
      taps.append(x)
    return taps


class VGG16(nn.Module):
  """(n, 224, 224, 3) normalised -> fc2 pre-ReLU (n, 4096):
  ``W2 relu(W1 flatten(pool5) + b1) + b2``."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    relu5_3 = VGG16Features(name="features")(x)[-1]
    pool5 = nn.max_pool(relu5_3, (2, 2), strides=(2, 2))
    if pool5.shape[1:3] != (7, 7):
      raise ValueError(f"VGG16 head expects a 224x224 input (pool5 7x7), got pool5 {pool5.shape}")
    h = pool5.reshape(pool5.shape[0], -1)
    h = nn.relu(nn.Dense(4096, precision=PRECISION, name="fc1")(h))
    return nn.Dense(4096, precision=PRECISION, name="fc2")(h)


class AlexNetFeatures(nn.Module):
  """(n, H, W, 3) normalised -> ReLU outputs of the five convs, each (n, h, w, C)."""

  @nn.compact
  def __call__(self, x: jax.Array) -> list[jax.Array]:
    taps: list[jax.Array] = []
    for index, ch, k, stride, pad in ALEXNET_CONVS:
      if index in (3, 6):
        x = nn.max_pool(x, (3, 3), strides=(2, 2))
      x = nn.relu(_conv(ch, k, stride, pad, f"conv{index}")(x))
      taps.append(x)
    return taps


def tap_channels(net: str) -> Sequence[int]:
  """Channels of the five taps: vgg (64, 128, 256, 512, 512), alex (64, 192, 384, 256, 256)."""
  if net == "vgg":
    return tuple(stage[-1][1] for stage in VGG16_STAGES)
  return tuple(c[1] for c in ALEXNET_CONVS)
