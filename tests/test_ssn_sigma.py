"""σ_E of the spatially modulated convolution: closed form vs the direct second convolution,
vs Monte-Carlo output statistics, and the reduction to StyleGAN2's modulated conv."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxspatial.models import layers
from jaxspatial.models import spatial_modulation as sm

CASES = [(up, border) for up in (False, True) for border in sm.BORDERS]


def _random(shape_w, shape_s, seed=0):
  k1, k2 = jax.random.split(jax.random.key(seed))
  w = jax.random.normal(k1, shape_w) / np.sqrt(np.prod(shape_w[:3]))
  s = jax.random.normal(k2, shape_s) + 0.3
  return w, s


@pytest.mark.parametrize("up,border,k", [(up, border, k) for up, border in CASES
                                          for k in (1, 3, 5) if not (up and k == 1)])
def test_closed_form_equals_direct_convolution(up, border, k):
  """(The up-sampling layer always has a 3x3 or larger kernel, so k=1 is not a case there.)"""
  w, s = _random((k, k, 5, 7), (2, 6, 5, 5))   # non-square maps catch axis mix-ups
  closed = sm.sigma_e_sq(w, s, up=up, border=border)
  direct = sm.sigma_e_sq_direct(w, s, up=up, border=border)
  np.testing.assert_allclose(closed, direct, rtol=2e-6)


def _monte_carlo_sigma_sq(w, s, up, border, samples, key):
  """Mean energy of the actual output ``w * (s ⊙ h)`` for h ~ N(0, 1) everywhere on the
  extended domain (beyond the border: s edge-replicated or zero), reduced as σ_E defines."""
  r = w.shape[0] // 2
  s_ext = sm._pad_border(s, r, border)
  h = jax.random.normal(key, (samples,) + s_ext.shape[1:])
  x = s_ext * h
  if up:
    y = layers.conv_transpose_2x(x, w, precision=jax.lax.Precision.HIGHEST)
  else:
    y = jax.lax.conv_general_dilated(x, w, (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                     precision=jax.lax.Precision.HIGHEST)
  return sm.energy_per_input_pixel(jnp.square(y), s.shape[1], s.shape[2], r, up).mean(0)


@pytest.mark.parametrize("up,border", CASES)
def test_closed_form_equals_monte_carlo(up, border):
  w, s = _random((3, 3, 4, 3), (1, 6, 5, 4), seed=1)
  mc = _monte_carlo_sigma_sq(w, s, up, border, 4000, jax.random.key(2))
  closed = sm.sigma_e_sq(w, s, up=up, border=border)[0]
  np.testing.assert_allclose(np.sqrt(mc / closed), 1.0, atol=0.015)


def test_demodulated_output_has_unit_expected_std():
  """The op itself (zero-padded conv, literal eq. 14 convention): unit std on unit inputs."""
  w, s = _random((3, 3, 4, 6), (1, 7, 7, 4), seed=3)
  h = jax.random.normal(jax.random.key(4), (3000, 7, 7, 4))
  y = sm.spatially_modulated_conv(h, w, jnp.broadcast_to(s, h.shape), border="zero")
  np.testing.assert_allclose(jnp.sqrt(jnp.mean(jnp.square(y), axis=(0, 1, 2))), 1.0, atol=0.015)


def test_replicate_border_is_stylegan2_for_constant_styles_zero_is_not():
  w, s = _random((3, 3, 8, 4), (3, 1, 1, 8), seed=5)
  s_map = jnp.broadcast_to(s, (3, 4, 4, 8))
  ref = 1.0 / jnp.square(layers.demodulation(w, s[:, 0, 0])) - layers.DEMOD_EPS
  for up in (False, True):
    np.testing.assert_allclose(sm.sigma_e_sq(w, s_map, up=up), ref, rtol=1e-5)
    assert not np.allclose(sm.sigma_e_sq(w, s_map, up=up, border="zero"), ref, rtol=1e-2)


@pytest.mark.parametrize("up", [False, True])
def test_constant_styles_reproduce_modulated_conv(up):
  w, s = _random((3, 3, 6, 5), (2, 1, 1, 6), seed=6)
  x = jax.random.normal(jax.random.key(7), (2, 4, 4, 6))
  want = layers.modulated_conv(x, w, s[:, 0, 0], demodulate=True, up=up)
  got = sm.spatially_modulated_conv(x, w, jnp.broadcast_to(s, x.shape), up=up)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_window_means_brute_force():
  s2 = jax.random.uniform(jax.random.key(8), (2, 5, 4, 3))
  for border in sm.BORDERS:
    m = sm.window_means(s2, 2, border)
    p = np.asarray(sm._pad_border(s2, 2, border))
    want = np.stack([np.stack([p[:, a:a + 5, b:b + 4].mean(axis=(1, 2)) for b in range(5)], 1)
                     for a in range(5)], 1)
    np.testing.assert_allclose(m, want, rtol=1e-6)


def test_resize_styles():
  g = jax.random.normal(jax.random.key(9), (2, 4, 2, 3))
  near = sm.resize_styles(g, (8, 8), "nearest")
  np.testing.assert_array_equal(near[:, 5, 7], g[:, 2, 1])
  np.testing.assert_allclose(sm.resize_styles(near, (4, 2), "bilinear"), g, rtol=1e-6)
  const = jnp.ones((1, 4, 4, 2)) * 1.7
  for mode in sm.UPSAMPLE_MODES:
    np.testing.assert_allclose(sm.resize_styles(const, (16, 16), mode), 1.7, rtol=1e-6)
  with pytest.raises(ValueError):
    sm.resize_styles(g, (6, 6), "nearest")
