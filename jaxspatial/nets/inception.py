"""pytorch-fid's FID InceptionV3 as a Flax Linen module (NHWC), up to pool3 (2048-d).

This is the network behind every published FID: torchvision's ``Inception3`` layout with
the TF-2015 graph's FID blocks (``pt_inception-2015-12-05-6726825d.pth``). What differs from
stock torchvision and matters for parity (see ``reference/perceptual/inception_fid``):

* every ``BasicConv2d`` is conv (no bias) -> BatchNorm in eval with ``eps = 1e-3`` -> ReLU;
* the pool branch of Mixed_5b..5d (A), Mixed_6b..6e (C) and Mixed_7b (E_1) is a 3x3/1/pad 1
  average pool with ``count_include_pad=False``; Mixed_7c (E_2) uses a 3x3/1/pad 1 *max* pool;
* no ``transform_input``: the network takes RGB in [-1, 1] at 299x299.

:func:`preprocess` is pytorch-fid's input path for our [-1, 1] images: bilinear resize to
299x299 with half-pixel centres (``align_corners=False``) and no antialias. pytorch-fid
resizes [0, 1] images and then maps ``2x - 1``; both steps are affine, so resizing the [-1, 1]
image directly is the same map up to float rounding.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

PRECISION = jax.lax.Precision.HIGHEST
INPUT_SIZE = 299
BN_EPS = 1e-3
FEATURE_DIM = 2048


def preprocess(images: jax.Array) -> jax.Array:
  """(n, H, W, 3) in [-1, 1] -> (n, 299, 299, 3): bilinear, half-pixel, no antialias."""
  n, h, w, c = images.shape
  images = images.astype(jnp.float32)
  if (h, w) == (INPUT_SIZE, INPUT_SIZE):
    return images
  return jax.image.resize(images, (n, INPUT_SIZE, INPUT_SIZE, c), "bilinear", antialias=False)


class BasicConv2d(nn.Module):
  """``relu(BN_eval(conv(x)))`` = ``relu((conv(x) - mean) * scale / sqrt(var + 1e-3) + bias)``;
  the conv has no bias."""
  features: int
  kernel: tuple[int, int]
  stride: int = 1
  padding: tuple[int, int] = (0, 0)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    ph, pw = self.padding
    x = nn.Conv(self.features, self.kernel, strides=self.stride, padding=((ph, ph), (pw, pw)),
                use_bias=False, precision=PRECISION, name="conv")(x)
    shape = (self.features,)
    scale = self.param("scale", nn.initializers.ones, shape)
    bias = self.param("bias", nn.initializers.zeros, shape)
    mean = self.param("mean", nn.initializers.zeros, shape)
    var = self.param("var", nn.initializers.ones, shape)
    inv = scale * jax.lax.rsqrt(var + BN_EPS)
    return nn.relu(x * inv + (bias - mean * inv))


def _avg_pool_3x3(x: jax.Array) -> jax.Array:
  """3x3/1/pad 1 mean over the valid (unpadded) pixels only (``count_include_pad=False``)."""
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_s2(x: jax.Array) -> jax.Array:
  return nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")


class InceptionA(nn.Module):
  """Mixed_5b..5d: channels = [1x1 64, 5x5 64, 3x3dbl 96, pool pool_features]."""
  pool_features: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b1 = BasicConv2d(64, (1, 1), name="branch1x1")(x)
    b5 = BasicConv2d(48, (1, 1), name="branch5x5_1")(x)
    b5 = BasicConv2d(64, (5, 5), padding=(2, 2), name="branch5x5_2")(b5)
    b3 = BasicConv2d(64, (1, 1), name="branch3x3dbl_1")(x)
    b3 = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(b3)
    b3 = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_3")(b3)
    bp = BasicConv2d(self.pool_features, (1, 1), name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
  """Mixed_6a (stock): [3x3/2 384, 3x3dbl/2 96, max pool 3x3/2]."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b3 = BasicConv2d(384, (3, 3), stride=2, name="branch3x3")(x)
    bd = BasicConv2d(64, (1, 1), name="branch3x3dbl_1")(x)
    bd = BasicConv2d(96, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = BasicConv2d(96, (3, 3), stride=2, name="branch3x3dbl_3")(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3_s2(x)], axis=-1)


class InceptionC(nn.Module):
  """Mixed_6b..6e: [1x1 192, 7x7 192, 7x7dbl 192, pool 192] with factorised 1x7/7x1 convs."""
  c7: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    c7 = self.c7
    b1 = BasicConv2d(192, (1, 1), name="branch1x1")(x)
    b7 = BasicConv2d(c7, (1, 1), name="branch7x7_1")(x)
    b7 = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
    bd = BasicConv2d(c7, (1, 1), name="branch7x7dbl_1")(x)
    bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
    bd = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
    bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
    bd = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
    bp = BasicConv2d(192, (1, 1), name="branch_pool")(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
  """Mixed_7a (stock): [3x3/2 320, 7x7x3/2 192, max pool 3x3/2]."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b3 = BasicConv2d(192, (1, 1), name="branch3x3_1")(x)
    b3 = BasicConv2d(320, (3, 3), stride=2, name="branch3x3_2")(b3)
    b7 = BasicConv2d(192, (1, 1), name="branch7x7x3_1")(x)
    b7 = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
    b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
    b7 = BasicConv2d(192, (3, 3), stride=2, name="branch7x7x3_4")(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3_s2(x)], axis=-1)


class InceptionE(nn.Module):
  """Mixed_7b (``pool="avg"``, count_include_pad=False) and Mixed_7c (``pool="max"``):
  [1x1 320, cat(1x3, 3x1) 768, cat(1x3, 3x1) 768, pool 192] = 2048 channels."""
  pool: str

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b1 = BasicConv2d(320, (1, 1), name="branch1x1")(x)
    b3 = BasicConv2d(384, (1, 1), name="branch3x3_1")(x)
    b3 = jnp.concatenate([
        BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
        BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3)], axis=-1)
    bd = BasicConv2d(448, (1, 1), name="branch3x3dbl_1")(x)
    bd = BasicConv2d(384, (3, 3), padding=(1, 1), name="branch3x3dbl_2")(bd)
    bd = jnp.concatenate([
        BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
        BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd)], axis=-1)
    if self.pool == "avg":
      pooled = _avg_pool_3x3(x)
    else:  # post-ReLU input, so -inf and zero padding agree
      pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)))
    bp = BasicConv2d(192, (1, 1), name="branch_pool")(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FIDInceptionV3(nn.Module):
  """(n, 299, 299, 3) in [-1, 1] -> pool3 (n, 2048) = mean_HW of Mixed_7c's output (8x8)."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = BasicConv2d(32, (3, 3), stride=2, name="Conv2d_1a_3x3")(x)          # 149
    x = BasicConv2d(32, (3, 3), name="Conv2d_2a_3x3")(x)                    # 147
    x = BasicConv2d(64, (3, 3), padding=(1, 1), name="Conv2d_2b_3x3")(x)    # 147
    x = _max_pool_3x3_s2(x)                                                 # 73
    x = BasicConv2d(80, (1, 1), name="Conv2d_3b_1x1")(x)
    x = BasicConv2d(192, (3, 3), name="Conv2d_4a_3x3")(x)                   # 71
    x = _max_pool_3x3_s2(x)                                                 # 35
    x = InceptionA(32, name="Mixed_5b")(x)
    x = InceptionA(64, name="Mixed_5c")(x)
    x = InceptionA(64, name="Mixed_5d")(x)
    x = InceptionB(name="Mixed_6a")(x)                                      # 17
    x = InceptionC(128, name="Mixed_6b")(x)
    x = InceptionC(160, name="Mixed_6c")(x)
    x = InceptionC(160, name="Mixed_6d")(x)
    x = InceptionC(192, name="Mixed_6e")(x)
    x = InceptionD(name="Mixed_7a")(x)                                      # 8
    x = InceptionE("avg", name="Mixed_7b")(x)
    x = InceptionE("max", name="Mixed_7c")(x)
    return jnp.mean(x, axis=(1, 2))
