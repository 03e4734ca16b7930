"""The latent regressor for SSN and SpatialGAN generators (their family's regression target):
the SSN head keeps the block grid and G renders it, the SpatialGAN head adds the heatmap, a few
steps of the training loss lower the code terms (they fail if those terms are disconnected),
and a loaded regressor inverts, renders and draws variation maps."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from helpers import load_config
from jaxspatial import families
from jaxspatial.api.regressor import RegressorModel
from jaxspatial.data import collages
from jaxspatial.losses import regressor as rg
from jaxspatial.models import regressor as R

N = 4


def _generator_inputs(name, g, key, n):
  """The arguments ``g.init`` / ``g(...)`` take: z, and a SpatialGAN's heatmaps."""
  inputs = rg.regression_target(load_config("tiny", name).model).draw(g, key, n)
  return (inputs["z"], inputs["heatmaps"]) if isinstance(inputs, dict) else (inputs,)


@pytest.fixture(scope="module", params=["ssn", "spatialgan"])
def family(request):
  """(kind, generator config, Flax G, its random variables, the regressor config, E's
  variables) for the ``tiny`` generator of the family."""
  name = request.param
  g_cfg = load_config("tiny", name).model
  g = families.build_generator(g_cfg)
  g_vars = jax.jit(g.init)(jax.random.key(0), *_generator_inputs(name, g, jax.random.key(1), 1))
  model_cfg = R.regressor_model_config(g_cfg, depth=18, width=8, layout=rg.layout_of(g_cfg))
  cfg = ml_collections.ConfigDict(dict(
      batch_size=N, model=model_cfg,
      loss=dict(mse_weight=0.0, lpips_weight=0.0, latent_weight=1.0)))
  return name, g_cfg, g, g_vars, cfg, R.init_regressor(model_cfg, jax.random.key(2))


def _code_shapes(model_cfg, res, n=2):
  e = R.build_regressor(model_cfg)
  x = jax.ShapeDtypeStruct((n, res, res, 3), jnp.float32)
  m = jax.ShapeDtypeStruct((n, res, res, 1), jnp.float32)
  return jax.eval_shape(lambda k, x, m: e.init_with_output(k, x, m), jax.random.key(0), x, m)


def test_ssn_head_keeps_the_block_grid_and_the_generator_renders_it():
  g_cfg = load_config("tiny", "ssn").model                 # 16 px, 4x4 blocks, w_dim 32
  g = families.build_generator(g_cfg)
  cfg = R.regressor_model_config(g_cfg, depth=18, width=8, layout=rg.layout_of(g_cfg))
  (ws, variables) = _code_shapes(cfg, 16)
  assert ws.shape == (2, g.num_ws, 4, 4, 32)
  styles = jax.eval_shape(lambda v, z: g.apply(v, z, method=type(g).styles),
                          *jax.eval_shape(lambda k, z: (g.init(k, z), z), jax.random.key(0),
                                          jax.ShapeDtypeStruct((2, 4, 4, 32), jnp.float32)))
  assert ws.shape == styles.shape                          # exactly the W+ G consumes
  g_vars = jax.eval_shape(g.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 4, 4, 32),
                                                                          jnp.float32))
  image = jax.eval_shape(lambda v, c: rg.BLOCK_GRID_TARGET.synthesize(g, v, c, "const", {}),
                         g_vars, ws)
  assert image.shape == (2, 16, 16, 3)
  assert variables["params"]["conv5"]["kernel"].shape == (1, 1, 64, g.num_ws * 32)
  with pytest.raises(ValueError, match="stylegan2"):     # no default layout for an SSN
    R.regressor_model_config(g_cfg)


def test_area_pool_averages_each_window():
  """Block (i, j) is the mean of rows floor(i·H/gh) .. ceil((i+1)·H/gh) − 1 (columns alike)."""
  x = np.random.default_rng(0).normal(size=(2, 6, 8, 3)).astype(np.float32)
  got = np.asarray(R.area_pool(jnp.asarray(x), (4, 4)))
  for i in range(4):
    for j in range(4):
      rows = slice(i * 6 // 4, -(-(i + 1) * 6 // 4))
      cols = slice(j * 8 // 4, -(-(j + 1) * 8 // 4))
      np.testing.assert_allclose(got[:, i, j], x[:, rows, cols].mean(axis=(1, 2)), atol=1e-5)


@pytest.mark.parametrize("preset,codes,centres", [("tiny", 0, 7), ("demo_indoor", 4, 3)])
def test_spatialgan_head_predicts_wplus_and_the_heatmap(preset, codes, centres):
  g_cfg = load_config(preset, "spatialgan").model
  g = families.build_generator(g_cfg)
  cfg = R.regressor_model_config(g_cfg, depth=18, width=8, layout=rg.layout_of(g_cfg))
  res = g_cfg.resolution
  code, _ = _code_shapes(cfg, res)
  style = (codes, g_cfg.w_dim) if codes else (g_cfg.w_dim,)
  assert jax.tree.map(lambda a: a.shape, code) == {
      "ws": (2, g.num_ws, *style), "centers": (2, centres, 2), "log_sigmas": (2, centres)}
  h = rg.HEATMAP_TARGET.heatmaps(g, jax.tree.map(lambda a: jnp.zeros(a.shape), code))
  sampled = g.sample_heatmaps(jax.random.key(0), 1)
  assert (h.levels, h.parents) == (sampled.levels, sampled.parents)
  np.testing.assert_array_equal(h.sigmas, 1.0)            # log σ = 0
  np.testing.assert_array_equal(h.amplitudes, 1.0)


def test_training_steps_lower_the_code_terms(family):
  """10 Adam steps on one batch with only the code terms weighted (pixel MSE at weight 0):
  W+ (and a SpatialGAN's centres and sigmas) move towards the generator's own, which needs
  those terms to reach E."""
  name, g_cfg, g, g_vars, cfg, e_vars = family
  target = rg.regression_target(g_cfg)
  optimizer = optax.adam(1e-2, b1=0.5, b2=0.999)

  @jax.jit
  def step(params, state, opt_state, key):
    g_apply = rg.generator_fns(g, g_vars, target=target)
    (_, (metrics, state)), grads = jax.value_and_grad(rg.regressor_loss_fn, has_aux=True)(
        params, state, g_apply, key, cfg)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), state, opt_state, metrics

  params, state = e_vars["params"], e_vars["batch_stats"]
  opt_state = optimizer.init(params)
  history = []
  for _ in range(10):
    params, state, opt_state, metrics = step(params, state, opt_state, jax.random.key(3))
    history.append(jax.device_get(metrics))
  first, last = history[0], history[-1]
  terms = ["latent"] + (["center", "sigma"] if name == "spatialgan" else [])
  assert set(first) == {"loss", "mse", "mask_coverage", *terms}
  np.testing.assert_allclose(first["loss"], sum(first[t] for t in terms), rtol=1e-5)
  for t in terms:
    assert last[t] < 0.5 * first[t], (t, first[t], last[t])


def test_a_loaded_regressor_inverts_renders_and_draws_variation_maps(family):
  name, g_cfg, g, g_vars, cfg, e_vars = family
  model = RegressorModel(ml_collections.ConfigDict({"model": cfg.model, "loss": cfg.loss}),
                         {"e": e_vars, "g_ema": g_vars})
  assert model.generator.kind == name and model.resolution == 16
  clg = collages.shapes_collages(4, 16, objects=1, pool=8, seed=0)
  parts = [(clg.part_images[:1, q], clg.part_masks[:1, q]) for q in range(2)]
  v = model.variation_map(parts, 1, (clg.part_images[1:, 1], clg.part_masks[1:, 1]))
  assert v.composites.shape == (3, 16, 16, 3) and np.isfinite(v.composites).all()
  np.testing.assert_allclose(v.variance, v.composites.var(axis=0).mean(axis=-1), atol=1e-6)
  np.testing.assert_array_equal(v.changed, clg.part_masks[1:, 1].max(axis=0)[..., 0])
  assert v.leakage == pytest.approx(np.mean((1 - v.changed) * v.variance))
  assert v.variance.max() > 0                              # the replaced part changes the image
  if name == "spatialgan":                                 # a dict code (an SSN's is an array)
    tiled = [(np.repeat(x, 3, 0), np.repeat(m, 3, 0)) for x, m in parts[:1]]
    collage, union = model.collage(tiled + [(clg.part_images[1:, 1], clg.part_masks[1:, 1])])
    code = model.invert(collage, union)                    # the composites are G(E(collage))
    np.testing.assert_allclose(model.synthesize(code), v.composites, atol=1e-4)
    np.testing.assert_allclose(model.heatmaps(code).centers, code["centers"])
