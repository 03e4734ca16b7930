"""Latent-regression pieces: mask sampler, losses, the training/finetuning loss functions,
collages."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
import torch

from jaxspatial import families
from jaxspatial import models as models_lib
from jaxspatial import checkpoint
from jaxspatial.cli import UserError
from jaxspatial.data import collages
from jaxspatial.losses import regressor as rg
from jaxspatial.metrics.masked_l1 import masked_l1
from jaxspatial.models import regressor as R
from jaxspatial.training import config_lib
from jaxspatial.training import regressor as regressor_training

# ---------------------------------------------------------------------------- masks


def test_upsampled_noise_is_torch_bilinear_without_align_corners():
  key = jax.random.key(3)
  u = np.array(jax.random.uniform(key, (4, 6, 6, 1), jnp.float32))
  ref = torch.nn.functional.interpolate(torch.from_numpy(u.transpose(0, 3, 1, 2)), size=40,
                                        mode="bilinear", align_corners=False)
  np.testing.assert_allclose(np.asarray(rg.upsampled_noise(key, 4, 40)),
                             ref.numpy().transpose(0, 2, 3, 1), atol=1e-6)


def _torch_coverage(t: float, n: int = 512, size: int = 32) -> float:
  u = torch.rand(n, 1, 6, 6, generator=torch.Generator().manual_seed(0))
  up = torch.nn.functional.interpolate(u, size=size, mode="bilinear", align_corners=False)
  return float((up < t).float().mean())


def test_mask_coverage_against_threshold():
  ts = (0.3, 0.5, 0.7, 0.9, 1.0)
  cov = [float(rg.sample_masks(jax.random.key(0), 512, 32, (t, t)).mean()) for t in ts]
  assert np.all(np.diff(cov) > 0)                       # more coverage for a higher t
  assert cov[-1] == 1.0                                 # t = 1 keeps everything
  assert abs(cov[1] - 0.5) < 0.03                       # symmetric noise: 50% at t = 0.5
  assert cov[0] < 0.3 and cov[3] > 0.9                  # interpolated noise clusters at 0.5
  for t, c in zip(ts, cov):                             # same law as the official sampler
    assert abs(c - _torch_coverage(t)) < 0.03, (t, c)


def test_masks_are_binary_and_share_one_threshold_per_batch():
  covs = []
  for i in range(64):
    m = np.asarray(rg.sample_masks(jax.random.key(i), 8, 32))
    assert m.shape == (8, 32, 32, 1) and set(np.unique(m)) <= {0.0, 1.0}
    covs.append(m.mean())
  # t ~ U[0.3, 1): batch coverage from about P(up(u) < 0.3) ~ 0.19 to 1, mean ~ 0.68.
  assert 0.12 < min(covs) and max(covs) <= 1.0
  assert 0.6 < np.mean(covs) < 0.76


# ---------------------------------------------------------------------------- losses


def test_masked_l1_against_numpy_definition():
  rng = np.random.default_rng(0)
  rec, collage = rng.normal(size=(2, 3, 8, 8, 3)).astype(np.float32)
  mask = (rng.uniform(size=(3, 8, 8, 1)) < 0.4).astype(np.float32)
  want = []
  for i in range(3):
    known = mask[i, ..., 0] > 0
    want.append(np.abs(rec[i][known] - collage[i][known]).mean())  # mean over known px, RGB
  np.testing.assert_allclose(masked_l1(rec, collage, mask), want, rtol=1e-5)


def test_regression_losses_terms():
  rng = np.random.default_rng(1)
  x, rec = jnp.asarray(rng.normal(size=(2, 2, 8, 8, 3)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(2, 4)), jnp.float32)
  ws = jnp.asarray(rng.normal(size=(2, 3, 4)), jnp.float32)
  calls = []

  def fake_lpips(a, b):
    calls.append(a.shape)
    return jnp.full((a.shape[0],), 0.25)

  total, m = rg.regression_losses(x, rec, w, ws, lpips_fn=fake_lpips, mse_weight=2.0,
                                  latent_weight=0.5)
  mse = np.mean((np.asarray(rec) - np.asarray(x)) ** 2)
  latent = np.mean((np.asarray(ws) - np.asarray(w)[:, None]) ** 2)
  np.testing.assert_allclose([m["mse"], m["latent"], m["lpips"]], [mse, latent, 0.25], rtol=1e-5)
  np.testing.assert_allclose(total, 2 * mse + 0.5 * latent + 0.25, rtol=1e-5)
  assert calls == [(2, 8, 8, 3)]
  total0, m0 = rg.regression_losses(x, rec, w, ws, lpips_weight=0.0)
  assert "lpips" not in m0 and np.isclose(total0, mse + latent)
  with pytest.raises(ValueError, match="lpips_fn"):
    rg.regression_losses(x, rec, w, ws)


def test_lpips_fn_resizes_and_masks():
  from jaxspatial.nets import lpips_net
  rng = np.random.default_rng(2)
  x, y = jnp.asarray(rng.uniform(-1, 1, (2, 2, 16, 16, 3)), jnp.float32)
  params = jax.jit(lpips_net.LPIPS("vgg").init)(jax.random.key(0), x, y)["params"]
  params = {k: jnp.abs(jax.random.normal(jax.random.key(1), v.shape)) if k.startswith("lin")
            else v for k, v in params.items()}   # random non-negative heads (init is zeros)
  ones = jnp.ones((2, 16, 16, 1))
  half = ones.at[:, 8:].set(0.0)

  @jax.jit
  def values(params, x, y):
    fn, fn32 = rg.make_lpips_fn(params, "vgg"), rg.make_lpips_fn(params, "vgg", 32)
    spatial = lpips_net.lpips_distance(params, x, y, "vgg", spatial=True)
    up = lambda a: R.area_resize(a, 32)  # noqa: E731
    return (fn(x, y), fn(x, y, ones), fn(x, y, half), spatial[:, :8].mean(axis=(1, 2)),
            fn32(x, y), lpips_net.lpips_distance(params, up(x), up(y), "vgg"))

  d, d_ones, d_half, want_half, d32, want32 = values(params, x, y)
  assert d.shape == (2,) and np.all(np.asarray(d) > 0)
  np.testing.assert_allclose(d_ones, d, rtol=1e-3)         # a full mask is plain LPIPS
  np.testing.assert_allclose(d_half, want_half, rtol=1e-5)  # Σ map·m / Σ m
  np.testing.assert_allclose(d32, want32, rtol=1e-5)
  assert np.isfinite(np.asarray(d32)).all() and not np.allclose(d32, d)
  assert rg.load_lpips_params(ml_collections.ConfigDict({"lpips_weight": 0.0})) is None


# ---------------------------------------------------------------------------- loss functions


@pytest.fixture(scope="module")
def setup():
  g_cfg = models_lib.stylegan2_model_config(16, z_dim=32, w_dim=32, n_mlp=2, channel_base=256,
                                            channel_max=32)
  generator = families.build_generator(g_cfg)
  g_vars = jax.jit(generator.init)({"params": jax.random.key(0)}, jnp.zeros((1, 32)))
  cfg = ml_collections.ConfigDict(dict(
      batch_size=4, model=R.regressor_model_config(g_cfg, depth=18, width=8),
      loss=dict(mse_weight=1.0, lpips_weight=1.0, latent_weight=1.0)))
  e_vars = R.init_regressor(cfg.model, jax.random.key(1))
  return cfg, generator, g_vars, e_vars


def test_regressor_loss_fn_trains_e_only(setup):
  cfg, generator, g_vars, e_vars = setup
  fake_lpips = lambda a, b: jnp.mean(jnp.abs(a - b), axis=(1, 2, 3))  # noqa: E731
  optimizer = optax.adam(1e-3, b1=0.5, b2=0.999)

  @jax.jit
  def step(e_params, e_state, opt_state, g_vars, key):
    g_apply = rg.generator_fns(generator, g_vars)
    grad_fn = jax.value_and_grad(rg.regressor_loss_fn, has_aux=True)
    (loss, (metrics, e_state)), grads = grad_fn(e_params, e_state, g_apply, key, cfg, fake_lpips)
    updates, opt_state = optimizer.update(grads, opt_state, e_params)
    return optax.apply_updates(e_params, updates), e_state, opt_state, metrics, grads

  params, state = e_vars["params"], e_vars["batch_stats"]
  opt_state = optimizer.init(params)
  key = jax.random.key(2)                       # one fixed batch: the loss must go down
  params, state, opt_state, metrics, grads = step(params, state, opt_state, g_vars, key)
  assert set(metrics) == {"loss", "mse", "lpips", "latent", "mask_coverage"}
  np.testing.assert_allclose(metrics["loss"],
                             metrics["mse"] + metrics["lpips"] + metrics["latent"], rtol=1e-5)
  assert 0.0 < metrics["mask_coverage"] <= 1.0
  norms = [float(jnp.linalg.norm(g)) for g in jax.tree.leaves(grads)]
  assert all(np.isfinite(norms)) and max(norms) > 0
  assert jax.tree.structure(state) == jax.tree.structure(e_vars["batch_stats"])
  assert not np.allclose(state["bn1"]["mean"], e_vars["batch_stats"]["bn1"]["mean"])
  first = float(metrics["loss"])
  for _ in range(15):
    params, state, opt_state, metrics, _ = step(params, state, opt_state, g_vars, key)
  assert float(metrics["loss"]) < 0.7 * first, (first, float(metrics["loss"]))


def test_finetune_loss_ignores_unknown_pixels(setup):
  cfg, generator, g_vars, e_vars = setup
  fcfg = ml_collections.ConfigDict(cfg.to_dict())
  fcfg.loss.lpips_weight = 0.0
  g_apply = rg.generator_fns(generator, g_vars)
  x = g_apply.generate(jax.random.normal(jax.random.key(5), (2, 32)))[0]
  mask = jnp.zeros((2, 16, 16, 1)).at[:, :, :8].set(1.0)
  fn = jax.jit(lambda x: rg.finetune_loss_fn(e_vars["params"], e_vars["batch_stats"], g_apply,
                                             jax.random.key(0), x, mask, fcfg))
  loss, metrics = fn(x)
  loss2, _ = fn(jnp.where(mask > 0, x, 5.0))   # changing unknown pixels changes nothing
  np.testing.assert_allclose(loss, loss2, rtol=1e-6)
  assert np.isfinite(loss) and set(metrics) == {"loss", "mse"}


def _regressor_config(preset):
  return config_lib.load("regressor", preset)


def test_configs_and_attach_generator(tmp_path, setup):
  for preset in ("tiny", "demo", "paper256"):
    c = _regressor_config(preset)
    assert c.model.kind == "regressor" and c.generator == ""
    assert (c.optim.lr, c.optim.b1, c.optim.b2) == (1e-4, 0.5, 0.999)
  assert _regressor_config("paper256").model.depth == 34
  cfg, _, g_vars, _ = setup
  g_dir = tmp_path / "g"
  checkpoint.save_model_dir(g_dir, {"g_ema": g_vars},
                            ml_collections.ConfigDict({"model": cfg.model.generator.to_dict()}))
  train_cfg = _regressor_config("tiny")
  train_cfg.generator = str(g_dir)
  train_cfg.model.use_mask = False
  out, got = regressor_training.attach_generator(train_cfg)
  assert out.model.num_ws == 6 and out.model.input_size == 16 and not out.model.use_mask
  assert out.model.generator.resolution == 16 and out.data.resolution == 16
  assert R.build_regressor(out.model).depth == 18
  assert jax.tree.structure(got) == jax.tree.structure(g_vars)
  for bad, msg in [("", "--config.generator=DIR"), (str(tmp_path / "nope"), "does not exist")]:
    train_cfg.generator = bad
    with pytest.raises(UserError, match=msg):
      regressor_training.attach_generator(train_cfg)


# ---------------------------------------------------------------------------- collages


def test_paste_layers_later_over_earlier():
  a, b = np.full((1, 4, 4, 3), 0.5, np.float32), np.full((1, 4, 4, 3), -0.5, np.float32)
  ma = np.zeros((1, 4, 4, 1), np.float32)
  ma[:, :3] = 1
  mb = np.zeros_like(ma)
  mb[:, 2:] = 1
  collage, union = collages.paste_layers([(a, ma), (b, mb)])
  np.testing.assert_array_equal(collage[0, :, 0, 0], [0.5, 0.5, -0.5, -0.5])
  np.testing.assert_array_equal(union[0, :, 0, 0], [1, 1, 1, 1])
  collage, union = collages.paste_layers([(a, ma)])
  assert collage[0, 3, 0, 0] == 0.0 and union[0, 3, 0, 0] == 0.0   # holes stay 0 / unknown


def test_automatic_collages_from_ground_truth_masks():
  n_pool, k = 6, 2
  images = np.stack([np.full((8, 8, 3), i / 10, np.float32) for i in range(n_pool)])
  masks = np.zeros((n_pool, 8, 8, k), np.float32)
  for i in range(n_pool):
    masks[i, i:i + 2, :, 0] = 1                   # one object per scene, a band of rows
  col = collages.automatic_collages(images, masks, 5, objects=2, seed=0)
  assert col.part_images.shape == (5, 3, 8, 8, 3) and col.part_masks.shape == (5, 3, 8, 8, 1)
  for j in range(5):
    bg_scene = int(round(col.part_images[j, 0, 0, 0, 0] * 10))
    np.testing.assert_array_equal(col.part_masks[j, 0, ..., 0], 1 - masks[bg_scene, ..., 0])
    donors = {int(round(col.part_images[j, p, 0, 0, 0] * 10)) for p in (1, 2)}
    assert len(donors) == 2 and bg_scene not in donors
  want, union = collages.paste_layers(col.parts)
  np.testing.assert_array_equal(col.collage, want)
  np.testing.assert_array_equal(col.mask, union)


def test_shapes_collages():
  col = collages.shapes_collages(4, 16, objects=2, pool=8, seed=0)
  assert col.collage.shape == (4, 16, 16, 3) and col.mask.shape == (4, 16, 16, 1)
  assert col.collage.min() >= -1 and col.collage.max() <= 1
  assert all(col.part_masks[:, p].sum() > 0 for p in range(3))


def test_fill_holes_uses_the_background_layers_mean_colour():
  """RGB Fill (Chai et al. 2021, Supp. A.2.4): known pixels kept, every hole set to the mean
  of the background layer's pasted pixels -- not of the whole collage."""
  rng = np.random.default_rng(0)
  bg = rng.uniform(-1, 1, (2, 6, 6, 3)).astype(np.float32)
  obj = np.full((2, 6, 6, 3), 0.9, np.float32)
  m_bg = np.zeros((2, 6, 6, 1), np.float32)
  m_bg[:, :2] = 1                                   # background known in the top two rows
  m_obj = np.zeros_like(m_bg)
  m_obj[:, 4:, :3] = 1                              # an object pasted bottom left
  parts = np.stack([bg, obj], 1), np.stack([m_bg, m_obj], 1)
  collage, union = collages.paste_layers([(bg, m_bg), (obj, m_obj)])
  filled = collages.fill_holes(collages.Collages(*parts, collage, union))
  np.testing.assert_array_equal(filled[union[..., 0] > 0], collage[union[..., 0] > 0])
  for i in range(2):
    want = bg[i, :2].reshape(-1, 3).mean(axis=0)
    np.testing.assert_allclose(filled[i, 3, 5], want, rtol=1e-6)     # a hole
    np.testing.assert_allclose(filled[i, 5, 5], want, rtol=1e-6)
