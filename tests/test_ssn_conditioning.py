"""SSN's spatial-conditioning variants (``model.spatial_conditioning``): SPADE (appendix A eq. 3)
and AdaIN with spatial styles (eq. 6) against direct numpy computations, the layer that wraps
them against a numpy conv, and the generator building, running and training one step with
each variant -- the ``ssn-droplets`` reproduction trains all three."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxspatial.models import ssn
from jaxspatial.training import config_lib



def _np_norm(h, scale, bias, axes):
  """``scale * (h - mean) / sqrt(var + eps) + bias``, statistics over ``axes`` (float64)."""
  h = h.astype(np.float64)
  mu = h.mean(axis=axes, keepdims=True)
  var = ((h - mu) ** 2).mean(axis=axes, keepdims=True)
  return scale * (h - mu) / np.sqrt(var + ssn.NORM_EPS) + bias


def _inputs(seed=0, n=3, style_n=3):
  rng = np.random.default_rng(seed)
  h = rng.normal(0.4, 2.0, (n, 5, 6, 4)).astype(np.float32)
  h[1] *= 3.0                                    # samples with different statistics
  scale = rng.normal(1.0, 0.5, (style_n, 5, 6, 4)).astype(np.float32)
  bias = rng.normal(0.0, 0.5, (style_n, 5, 6, 4)).astype(np.float32)
  return h, scale, bias


@pytest.mark.parametrize("style_n", [3, 1])
def test_spade_is_eq3_with_statistics_over_batch_and_space(style_n):
  """Eq. 3-5: one mean and variance per channel over (N, H, W); styles per pixel, shared by
  the batch when given once (the paper's 1×C×H×W)."""
  h, scale, bias = _inputs(style_n=style_n)
  got = np.asarray(ssn.spade(jnp.asarray(h), jnp.asarray(scale), jnp.asarray(bias)))
  np.testing.assert_allclose(got, _np_norm(h, scale, bias, (0, 1, 2)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("style_n", [3, 1])
def test_adain_is_eq6_with_per_sample_statistics(style_n):
  """Eq. 6-8: one mean and variance per sample and channel over (H, W)."""
  h, scale, bias = _inputs(style_n=style_n)
  got = np.asarray(ssn.adain(jnp.asarray(h), jnp.asarray(scale), jnp.asarray(bias)))
  np.testing.assert_allclose(got, _np_norm(h, scale, bias, (1, 2)), rtol=1e-5, atol=1e-5)


def test_spade_couples_the_batch_and_adain_does_not():
  """What tells the two apart: SPADE's sample 0 changes with sample 1, AdaIN's does not."""
  h, scale, bias = _inputs()
  h2 = h.copy()
  h2[1] += 5.0
  for fn, coupled in ((ssn.spade, True), (ssn.adain, False)):
    a, b = (np.asarray(fn(jnp.asarray(x), jnp.asarray(scale), jnp.asarray(bias)))[0]
            for x in (h, h2))
    assert (np.abs(a - b).max() > 1e-2) == coupled, fn.__name__


def _np_conv_same(x, w):
  """'same' cross-correlation, (N, H, W, Cin) x (k, k, Cin, Cout), zero padding."""
  k = w.shape[0]
  r = k // 2
  xp = np.pad(x, ((0, 0), (r, r), (r, r), (0, 0)))
  h, wd = x.shape[1:3]
  return sum(np.einsum("nhwc,cd->nhwd", xp[:, a:a + h, b:b + wd], w[a, b])
             for a in range(k) for b in range(k))


@pytest.mark.parametrize("norm", ["spade", "adain"])
def test_spatial_norm_conv_is_the_equation_on_a_plain_conv(norm):
  """The layer = eq. 3 / eq. 6 applied to ``w * h`` (equalised-LR weight), with its two
  affine style grids repeated over each block's pixels (nearest resize)."""
  rng = np.random.default_rng(1)
  x = rng.normal(size=(2, 8, 8, 3)).astype(np.float32)
  grid = rng.normal(size=(2, 2, 2, 5)).astype(np.float32)
  layer = ssn.SpatialNormConv(4, 3, norm)
  variables = layer.init(jax.random.key(0), x, grid)
  with jax.default_matmul_precision("highest"):
    got = np.asarray(layer.apply(variables, x, grid))
  p = jax.tree.map(np.asarray, variables["params"])
  w = p["weight"] / np.sqrt(3 * 9)
  affine = lambda name: grid @ (p[name]["weight"] / np.sqrt(5)) + p[name]["bias"]
  pixels = lambda s: np.repeat(np.repeat(s, 4, axis=1), 4, axis=2)
  axes = (0, 1, 2) if norm == "spade" else (1, 2)
  want = _np_norm(_np_conv_same(x, w), pixels(affine("modulation")),
                  pixels(affine("modulation_bias")), axes)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
  np.testing.assert_array_equal(p["modulation"]["bias"], np.ones(4))       # s_s starts at 1
  np.testing.assert_array_equal(p["modulation_bias"]["bias"], np.zeros(4))  # s_b at 0


def test_unknown_conditioning_and_transfer_into_a_variant_are_refused():
  with pytest.raises(ValueError, match="spatial_conditioning"):
    ssn.build_generator(ssn.ssn_model_config(8, spatial_conditioning="batchnorm"))
  with pytest.raises(ValueError, match="modconv SSN only"):
    ssn.transfer_generator({}, ssn.ssn_model_config(8, spatial_conditioning="spade"))


def _tiny(conditioning):
  """The ``tiny`` SSN preset with ``conditioning``, at 8 px (one resolution block fewer to
  compile: every kind of layer is still there, the 2x up-sampling conv included) and without
  R_D (two more generator passes to compile; it sees the layers only through G's output)."""
  config = config_lib.load("ssn", "tiny")
  assert config.model.spatial_conditioning == "modconv"      # the default is the paper's layer
  config.update_from_flattened_dict({"model.spatial_conditioning": conditioning,
                                     "model.resolution": 8, "data.resolution": 8,
                                     "loss.distortion_weight": 0.0})
  return config


@pytest.mark.parametrize("conditioning", ["spade", "adain"])
def test_each_variant_builds_runs_and_trains_a_step(conditioning):
  """The tiny SSN with each new conditioning (modconv's steps: tests/test_learning.py): the
  trainer's generator step (non-saturating loss through D, Adam) moves G with finite
  losses; the styled convs are the variant's and ToRGB is unchanged; only SPADE makes a
  sample depend on the rest of its batch. One program (the D step and the regularisers would
  each compile another G or D pass)."""
  from jaxspatial.training import gan_step, loop
  from jaxspatial.training import state as state_lib
  config = _tiny(conditioning)
  plugin = loop.make_plugin(config)
  opt_g, opt_d = state_lib.make_optimizers(config)
  ctx = gan_step.StepContext(config, plugin, opt_g, opt_d)
  g = plugin.generator
  z = jax.random.normal(jax.random.key(3), (3, 4, 4, config.model.z_dim))
  z2 = z.at[0].set(-z[0])

  @jax.jit
  def run():
    state = gan_step.init_state(config, plugin, opt_g, opt_d, jax.random.key(0))
    new, metrics = gan_step.generator_step(ctx, state, jax.random.key(1))
    images = [g.apply(new.g, x, noise_mode="const") for x in (z, z2)]
    return state.g["params"], new.g["params"], metrics, images

  before, after, metrics, (a, b) = jax.device_get(run())
  assert "g_loss" in metrics
  assert all(np.isfinite(v) for v in metrics.values()), metrics
  moved = jax.tree.map(lambda x, y: float(np.abs(x - y).max()), before, after)
  assert max(jax.tree.leaves(moved)) > 0
  conv = after["synthesis"]["conv1"]["conv"]
  assert "modulation_bias" in conv
  assert "modulation_bias" not in after["synthesis"]["to_rgb1"]["conv"]
  assert a.shape == (3, 8, 8, 3) and np.isfinite(a).all()
  assert (np.abs(a[1:] - b[1:]).max() > 1e-4) == (conditioning == "spade")
