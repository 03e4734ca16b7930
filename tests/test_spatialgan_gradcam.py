"""GradCAM alignment: the JAX CAM against a direct (finite-difference) computation on a
hand-built D, the loss pipeline against numpy, and where gradients do and do not flow."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from helpers import np_init
from jaxspatial import families
from jaxspatial.losses import spatialgan as align
from jaxspatial.models import heatmaps as hm
from jaxspatial.models import spatialgan as sp

C = 3


def _pool(x):
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).mean((2, 4))


def hand_d(params, x, taps=None, return_features=False):
  """16 px -> f8 = pool(x W1) -> f4 = pool(tanh(f8) W2) -> logit = sum tanh(f4) V + b."""
  taps = taps or {}
  f8 = _pool(x @ params["w1"]) + taps.get(8, 0.0)
  f4 = _pool(jnp.tanh(f8) @ params["w2"]) + taps.get(4, 0.0)
  logits = jnp.sum(jnp.tanh(f4) * params["v"], axis=(1, 2, 3)) + params["b"]
  return (logits, {8: f8, 4: f4}) if return_features else logits


def _np_logits_from_f8(params, f8):
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  n, h, w, c = f8.shape
  f4 = (np.tanh(f8) @ p["w2"]).reshape(n, h // 2, 2, w // 2, 2, c).mean((2, 4))
  return np.sum(np.tanh(f4) * p["v"], axis=(1, 2, 3)) + p["b"], f4


def _np_logits_from_f4(params, f4):
  p = {k: np.asarray(v, np.float64) for k, v in params.items()}
  return np.sum(np.tanh(f4) * p["v"], axis=(1, 2, 3)) + p["b"]


def _softplus(x):
  return np.logaddexp(0.0, x)


def _fd_grad(fn, f, eps=1e-5):
  g = np.zeros_like(f)
  for idx in np.ndindex(f.shape):
    d = np.zeros_like(f)
    d[idx] = eps
    g[idx] = (fn(f + d) - fn(f - d)) / (2 * eps)
  return g


@pytest.fixture(scope="module")
def setup():
  k = jax.random.split(jax.random.key(0), 5)
  params = {"w1": jax.random.normal(k[0], (3, C)), "w2": jax.random.normal(k[1], (C, C)),
            "v": jax.random.normal(k[2], (4, 4, C)), "b": jnp.float32(0.3)}
  x = jax.random.normal(k[3], (2, 16, 16, 3))
  return params, x


def _direct_cams(params, x):
  """CAM by the definition with finite-difference gradients, in float64 numpy."""
  _, feats = hand_d(params, x, return_features=True)
  f8, f4 = (np.asarray(feats[r], np.float64) for r in (8, 4))
  target8 = lambda f: np.sum(_softplus(-_np_logits_from_f8(params, f)[0]))
  target4 = lambda f: np.sum(_softplus(-_np_logits_from_f4(params, f)))
  cams = {}
  for r, f, t in ((8, f8, target8), (4, f4, target4)):
    w = _fd_grad(t, f).mean(axis=(1, 2), keepdims=True)
    cams[r] = np.maximum(w * f, 0).sum(-1)
  return cams


def test_gradcam_equals_direct_computation(setup):
  params, x = setup
  cams = jax.jit(lambda p, x: align.gradcam(hand_d, p, x, resolutions=(4, 8)))(params, x)
  direct = _direct_cams(params, x)
  for r in (4, 8):
    assert cams[r].shape == (2, r, r)
    np.testing.assert_allclose(np.asarray(cams[r]), direct[r], rtol=2e-4, atol=1e-5)
    assert np.asarray(cams[r]).max() > 0


def test_resize_aligned_matches_torch():
  x = np.random.default_rng(0).normal(size=(2, 4, 4, 3)).astype(np.float32)
  for size in (4, 9, 16):
    ours = np.asarray(sp.resize_aligned(jnp.asarray(x), size))
    ref = torch.nn.functional.interpolate(torch.from_numpy(x).permute(0, 3, 1, 2), (size, size),
                                          mode="bilinear", align_corners=True)
    np.testing.assert_allclose(ours, ref.permute(0, 2, 3, 1).numpy(), rtol=1e-5, atol=1e-6)


def test_thresholded_l1_and_minmax():
  err = jnp.asarray([0.1, 0.3, 0.5, 0.2])
  np.testing.assert_allclose(align.thresholded_l1(err), 0.4, rtol=1e-6)
  np.testing.assert_allclose(align.thresholded_l1(jnp.asarray([0.1, 0.3, 0.2])), 0.2, rtol=1e-6)
  batched = jnp.asarray([[0.1, 0.3, 0.5], [0.1, 0.1, 0.9]])
  np.testing.assert_allclose(align.thresholded_l1(batched, axis=1), [0.4, 1.1 / 3], rtol=1e-6)

  x = jnp.asarray([[1.0, 3.0, 2.0], [5.0, 5.0, 5.0]])
  np.testing.assert_allclose(align.minmax_normalize(x), [[0, 1, 0.5], [0, 0, 0]], atol=1e-7)
  jac = jax.jacobian(lambda v: align.minmax_normalize(v[None])[0])(x[0])
  np.testing.assert_allclose(jac, np.eye(3) / 2.0, atol=1e-7)   # min/max are constants


def _np_resize(x, size):
  n_in = x.shape[1]
  src = np.arange(size) * (n_in - 1) / (size - 1)
  lo = np.floor(src).astype(int).clip(0, n_in - 1)
  hi = np.minimum(lo + 1, n_in - 1)
  f = src - lo
  m = np.zeros((size, n_in))
  m[np.arange(size), lo] += 1 - f
  m[np.arange(size), hi] += f
  return np.einsum("yh,nhw,xw->nyx", m, x, m)


def _np_norm(x):
  y = x - x.min(axis=(1, 2), keepdims=True)
  return y / y.max(axis=(1, 2), keepdims=True)


def _np_thr(err, axis=None):
  above = err > 0.25
  count = above.sum(axis=axis)
  return np.where(count > 1, (err * above).sum(axis=axis) / np.maximum(count, 1),
                  err.mean(axis=axis))


def test_alignment_loss_matches_numpy(setup):
  params, x = setup
  h = hm.sample(jax.random.key(7), 2).numpy()
  loss_fn = jax.jit(align.gradcam_alignment_loss, static_argnums=0,
                    static_argnames=("resolutions", "objective"))
  loss, metrics = loss_fn(hand_d, params, x, h, resolutions=(4, 8, 16))
  assert set(metrics) == {"align/4px", "align/8px"}        # 16 px is the image itself
  cams = _direct_cams(params, x)
  want = 0.0
  for r, level in ((4, 0), (8, 1)):
    cam = _np_norm(_np_resize(cams[r], 16))
    maps = np.asarray(h.level_maps(level, 16), np.float64)
    target = maps[..., 0] if level == 0 else _np_norm(maps.mean(-1))
    term = _np_thr(np.abs(cam - target))
    np.testing.assert_allclose(metrics[f"align/{r}px"], term, rtol=1e-4)
    want += term
  np.testing.assert_allclose(loss, want, rtol=1e-4)

  multi = hm.sample(jax.random.key(8), 2, "multi").numpy()
  loss_min, _ = loss_fn(hand_d, params, x, multi, resolutions=(4, 8), objective="min")
  maps = np.asarray(multi.maps(16), np.float64)
  targets = [maps[..., i] for i in range(3)] + [maps.mean(-1)]
  want = 0.0
  for r in (4, 8):
    cam = _np_norm(_np_resize(cams[r], 16))
    per = np.stack([_np_thr(np.abs(cam - _np_norm(t)), axis=(1, 2)) for t in targets])
    want += per.min(0).mean()
  np.testing.assert_allclose(loss_min, want, rtol=1e-4)


@pytest.fixture(scope="module")
def tiny_pair():
  cfg = sp.spatialgan_model_config(16, z_dim=8, w_dim=8, n_mlp=1, channel_base=64,
                                   channel_max=8, sel_hidden=8, mbstd_group_size=2)
  G, D = families.build_generator(cfg), families.build_discriminator(cfg)
  key = jax.random.key(1)
  h = G.sample_heatmaps(key, 2)
  z = jax.random.normal(key, (2, 8))
  g_vars = np_init(G, 0, z, h)
  d_vars = np_init(D, 1, jnp.zeros((2, 16, 16, 3)))
  return G, D, g_vars, d_vars, z, h


def test_gradient_reaches_g_but_not_d(tiny_pair):
  G, D, g_vars, d_vars, z, h = tiny_pair
  d_apply = align.discriminator_apply(D)

  def loss(g_params, d_params):
    img = G.apply({**g_vars, "params": g_params}, z, h)
    return align.gradcam_alignment_loss(d_apply, d_params, img, h)[0]

  g_grad, d_grad = jax.jit(jax.grad(loss, argnums=(0, 1)))(g_vars["params"], d_vars)
  assert all(float(jnp.abs(g).max()) == 0.0 for g in jax.tree.leaves(d_grad))
  g_norm = sum(float(jnp.sum(g * g)) for g in jax.tree.leaves(g_grad))
  assert np.isfinite(g_norm) and g_norm > 0
  sel = g_grad["synthesis"]["sel_conv1"]["output"]["weight"]
  assert float(jnp.abs(sel).max()) > 0         # the SEL itself learns from the alignment


def test_gradient_flows_only_through_features(tiny_pair):
  """d loss / d image equals the gradient with the CAM weights frozen as constants."""
  G, D, g_vars, d_vars, z, h = tiny_pair
  d_apply = align.discriminator_apply(D)
  img = jax.jit(G.apply)(g_vars, z, h)
  weights = jax.jit(lambda v, x: align.gradcam_weights(d_apply, v, x, (4, 8)))(d_vars, img)

  def frozen(x):
    _, feats = D.apply(d_vars, x, return_features=True)
    cams = align.class_activation_maps(weights, feats)
    total = 0.0
    for r, level in ((4, 0), (8, 1)):
      cam = align.minmax_normalize(sp.resize_aligned(cams[r][..., None], 16)[..., 0])
      total += align.thresholded_l1(jnp.abs(cam - align.heatmap_target(h, level, 16)))
    return total

  ours = jax.jit(jax.grad(lambda x: align.gradcam_alignment_loss(d_apply, d_vars, x, h)[0]))(img)
  np.testing.assert_allclose(np.asarray(ours), np.asarray(jax.jit(jax.grad(frozen))(img)),
                             rtol=1e-4, atol=1e-7)
  assert float(jnp.abs(ours).max()) > 0


def test_lazy_alignment_runs_every_kth_step_at_k_times_the_weight(tiny_pair):
  """``loss.align_every`` = k: ``gan_step.phase_at`` puts the alignment on steps 0, k, 2k, ...;
  a step there adds k x ``align_weight`` x the alignment loss, the others none (the term not
  traced: no ``align_loss`` metric in the training step); k = 1 keeps the plug-in as it is."""
  from helpers import load_config
  from jaxspatial.training import gan_step, state as state_lib
  from jaxspatial.training.spatialgan import SpatialGANPlugin
  G, D, g_vars, d_vars, z, h = tiny_pair
  config = load_config("tiny", "spatialgan")
  config.model.update(z_dim=8, w_dim=8, n_mlp=1, channel_base=64, channel_max=8, sel_hidden=8,
                      mbstd_group_size=2)
  config.batch_size = 2
  assert all(gan_step.phase_at(config, s).align for s in range(5))       # the preset: k = 1
  plugin = SpatialGANPlugin(config, G, D)
  assert plugin.for_phase(gan_step.Phase(False, False, align=False)) is plugin
  config.loss.update(align_weight=0.5, align_every=3)
  assert [gan_step.phase_at(config, s).align for s in range(7)] == [True, False, False] * 2 + [True]
  plugin = SpatialGANPlugin(config, G, D)
  fake = jax.jit(G.apply)(g_vars, z, h)
  inputs, key = {"heatmaps": h}, jax.random.key(0)
  want, _ = align.gradcam_alignment_loss(align.discriminator_apply(D), d_vars, fake, h,
                                         resolutions=(4, 8))
  on = plugin.for_phase(gan_step.Phase(False, False, align=True))
  loss, metrics = on.extra_generator_loss(g_vars, d_vars, inputs, None, fake, key)
  np.testing.assert_allclose(loss, 3 * 0.5 * want, rtol=1e-6)
  np.testing.assert_allclose(metrics["align_loss"], want, rtol=1e-6)
  off = plugin.for_phase(gan_step.Phase(False, False, align=False))
  loss, metrics = off.extra_generator_loss(g_vars, d_vars, inputs, None, fake, key)
  assert float(loss) == 0.0 and metrics == {}
  opt_g, opt_d = state_lib.make_optimizers(config)
  state = jax.eval_shape(lambda k: gan_step.init_state(config, plugin, opt_g, opt_d, k),
                         jax.random.key(0))
  batch = {"image": jax.ShapeDtypeStruct((2, 16, 16, 3), jnp.float32)}
  for on_step in (True, False):
    step = gan_step.make_train_step(config, plugin, opt_g, opt_d,
                                    gan_step.Phase(False, False, align=on_step))
    assert ("align_loss" in jax.eval_shape(step, state, batch)[1]) == on_step


def test_g_step_takes_the_alignment_features_from_its_adversarial_d_pass(tiny_pair):
  """``gan_step.generator_step`` hands the adversarial pass's D features to the alignment
  (``reads_d_features``): the same G update, up to float reassociation, as the alignment's
  own D pass."""
  from helpers import load_config
  from jaxspatial.training import gan_step, state as state_lib
  from jaxspatial.training.spatialgan import SpatialGANPlugin
  G, D, g_vars, d_vars, z, h = tiny_pair
  config = load_config("tiny", "spatialgan")
  config.model.update(z_dim=8, w_dim=8, n_mlp=1, channel_base=64, channel_max=8, sel_hidden=8,
                      mbstd_group_size=2)
  config.batch_size = 2

  class OwnPass(SpatialGANPlugin):
    reads_d_features = False

  def g_update(plugin):
    opt_g, opt_d = state_lib.make_optimizers(config)
    state = state_lib.GANState(step=jnp.zeros((), jnp.int32), g=g_vars, g_ema=g_vars, d=d_vars,
                               opt_g=opt_g.init(g_vars["params"]), opt_d=None,
                               pl_mean=jnp.zeros(()), augment={"p": jnp.zeros(())})
    ctx = gan_step.StepContext(config, plugin, opt_g, opt_d)
    new, metrics = jax.jit(lambda s: gan_step.generator_step(ctx, s, jax.random.key(3)))(state)
    return new.g["params"], metrics

  shared, m_shared = g_update(SpatialGANPlugin(config, G, D))
  own, m_own = g_update(OwnPass(config, G, D))
  assert SpatialGANPlugin(config, G, D).reads_d_features
  np.testing.assert_allclose(m_shared["align_loss"], m_own["align_loss"], rtol=1e-5)
  np.testing.assert_allclose(m_shared["grad_norm/g"], m_own["grad_norm/g"], rtol=1e-4)
  for a, b in zip(jax.tree.leaves(shared), jax.tree.leaves(own)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
