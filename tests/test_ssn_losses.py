"""R_D (paper eq. 2) on toy generators whose distortion is known in closed form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxspatial.losses import ssn as losses_ssn
from jaxspatial.losses.distortion import block_means, pixel_distortion

N, NH, NW, NZ, BLOCK = 6, 2, 3, 4, 4          # images 8 x 12


def _local(z):
  """Per-block-independent generator: image block (r, c) depends on z[:, r, c] only."""
  x = jnp.tanh(z[..., :3])
  return jnp.repeat(jnp.repeat(x, BLOCK, axis=1), BLOCK, axis=2)


def _mixing(z, strength=1.0):
  """Local image plus a global offset ``strength * mean_blocks z[..., 0]`` on every pixel."""
  return _local(z) + strength * jnp.mean(z[..., 0], axis=(1, 2))[:, None, None, None]


@pytest.fixture(scope="module")
def latents():
  k1, k2 = jax.random.split(jax.random.key(0))
  return (jax.random.normal(k1, (N, NH, NW, NZ)), jax.random.normal(k2, (N, NH, NW, NZ)))


def test_replace_blocks(latents):
  z, zp = latents
  blocks = jnp.array([0, 5, 3, 1, 2, 4])
  zt = losses_ssn.replace_blocks(z, zp, blocks)
  for i, a in enumerate(np.asarray(blocks)):
    r, c = divmod(int(a), NW)
    np.testing.assert_array_equal(zt[i, r, c], zp[i, r, c])
    keep = np.ones((NH, NW), bool)
    keep[r, c] = False
    np.testing.assert_array_equal(np.asarray(zt[i])[keep], np.asarray(z[i])[keep])


def test_block_independent_generator_has_zero_distortion(latents):
  z, zp = latents
  loss, aux = losses_ssn.distortion_regularizer(_local, z, zp, jax.random.key(1))
  assert float(loss) == 0.0
  assert aux["block_distortion"].shape == (N, NH, NW)
  # ... while the resampled block itself did change
  a = np.asarray(aux["blocks"])
  assert all(float(aux["block_distortion"][i].reshape(-1)[a[i]]) > 0 for i in range(N))


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_mixing_generator_matches_hand_computation(latents, reduction):
  z, zp = latents
  loss, aux = losses_ssn.distortion_regularizer(_mixing, z, zp, jax.random.key(2),
                                                reduction=reduction)
  nb = NH * NW
  a = np.asarray(aux["blocks"])
  dz = np.array([zp[i].reshape(nb, NZ)[a[i], 0] - z[i].reshape(nb, NZ)[a[i], 0]
                 for i in range(N)])
  per_pixel = 3 * (dz / nb) ** 2          # all 3 channels of b != a move by dz / nb
  np.testing.assert_allclose(aux["per_sample"], per_pixel, rtol=1e-5)
  want = per_pixel.mean() if reduction == "mean" else nb * (nb - 1) * per_pixel.mean()
  np.testing.assert_allclose(loss, want, rtol=1e-5)


def test_one_block_per_sample_is_unbiased_for_the_mean_over_blocks(latents):
  z, zp = latents
  nb = NH * NW
  exact = []
  for a in range(nb):
    blocks = jnp.full((N,), a)
    x, xt = _mixing(z), _mixing(losses_ssn.replace_blocks(z, zp, blocks))
    pb = block_means(pixel_distortion(x, xt), (NH, NW)).reshape(N, nb)
    exact.append((pb.sum(1) - pb[:, a]) / (nb - 1))
  exact = float(jnp.mean(jnp.stack(exact)))
  keys = jax.random.split(jax.random.key(3), 3000)
  estimates = jax.vmap(lambda k: losses_ssn.distortion_regularizer(_mixing, z, zp, k)[0])(keys)
  assert abs(float(estimates.mean()) - exact) < 4 * float(estimates.std()) / np.sqrt(3000)


def test_gradient_and_pluggable_distortion(latents):
  z, zp = latents
  key = jax.random.key(4)
  grad = jax.grad(lambda s: losses_ssn.distortion_regularizer(
      lambda q: _mixing(q, s), z, zp, key)[0])(1.0)
  loss = losses_ssn.distortion_regularizer(lambda q: _mixing(q), z, zp, key)[0]
  np.testing.assert_allclose(grad, 2 * loss, rtol=1e-4)   # loss is quadratic in strength
  l1 = lambda x, y: jnp.mean(jnp.abs(x - y), axis=-1)
  loss_l1, aux = losses_ssn.distortion_regularizer(_mixing, z, zp, key, distortion_fn=l1)
  assert float(loss_l1) > 0
  x = _mixing(z)
  same, _ = losses_ssn.distortion_regularizer(_mixing, z, zp, key, distortion_fn=l1, images=x)
  np.testing.assert_allclose(same, loss_l1, rtol=1e-6)
  with pytest.raises(ValueError, match="reduction"):
    losses_ssn.distortion_regularizer(_mixing, z, zp, key, reduction="max")
