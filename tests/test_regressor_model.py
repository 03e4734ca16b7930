"""The masked latent regressor network: W+ shapes, stem, BatchNorm, input resizing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxspatial.models import regressor as R
from jaxspatial.models import stylegan2_model_config


def _tiny_config(**kw):
  g = stylegan2_model_config(16, z_dim=32, w_dim=32, n_mlp=2, channel_base=256, channel_max=32)
  return R.regressor_model_config(g, depth=18, width=8, **kw)


def _abstract(cfg, res):
  module = R.build_regressor(cfg)
  x = jax.ShapeDtypeStruct((2, res, res, 3), jnp.float32)
  m = jax.ShapeDtypeStruct((2, res, res, 1), jnp.float32)
  return jax.eval_shape(lambda k, x, m: module.init_with_output(k, x, m), jax.random.key(0), x, m)


@pytest.mark.parametrize("resolution,num_ws", [(256, 14), (512, 16), (1024, 18)])
def test_wplus_shapes_of_paper_generators(resolution, num_ws):
  cfg = R.regressor_model_config(stylegan2_model_config(resolution))   # ResNet-34, 256 px input
  assert (cfg.num_ws, cfg.input_size, cfg.depth) == (num_ws, 256, 34)
  ws, variables = _abstract(cfg, resolution)
  assert ws.shape == (2, num_ws, 512) and ws.dtype == jnp.float32
  params = variables["params"]
  assert params["conv1"]["kernel"].shape == (7, 7, 4, 64)          # RGB + mask stem, 7x7/2
  assert params["conv5"]["kernel"].shape == (1, 1, 512, 512 * num_ws)
  assert "layer4_2" in params and "layer4_3" not in params         # ResNet-34: 3, 4, 6, 3
  assert set(variables) == {"params", "batch_stats"}


def test_rgb_only_ablation_has_a_three_channel_stem():
  cfg = R.regressor_model_config(stylegan2_model_config(256), depth=18, use_mask=False)
  _, variables = _abstract(cfg, 256)
  assert variables["params"]["conv1"]["kernel"].shape == (7, 7, 3, 64)
  assert "layer2_1" in variables["params"] and "layer2_2" not in variables["params"]


def test_config_rejects_other_generators_and_depths():
  g = stylegan2_model_config(16)
  bad = g.copy_and_resolve_references()
  bad.kind = "ssn"
  with pytest.raises(ValueError, match="stylegan2"):
    R.regressor_model_config(bad)
  with pytest.raises(ValueError, match="depth"):
    R.regressor_model_config(g, depth=50)


def test_area_resize_matches_torch_area_interpolation():
  x = np.random.default_rng(0).normal(size=(2, 32, 32, 4)).astype(np.float32)
  ref = torch.nn.functional.interpolate(torch.from_numpy(x.transpose(0, 3, 1, 2)), size=8,
                                        mode="area").numpy().transpose(0, 2, 3, 1)
  np.testing.assert_allclose(np.asarray(R.area_resize(jnp.asarray(x), 8)), ref, atol=1e-6)
  assert R.area_resize(jnp.asarray(x), 32).shape == (2, 32, 32, 4)
  assert R.area_resize(jnp.asarray(x), 48).shape == (2, 48, 48, 4)


@pytest.fixture(scope="module")
def tiny():
  cfg = _tiny_config()
  return cfg, R.build_regressor(cfg), R.init_regressor(cfg, jax.random.key(0))


def test_batchnorm_statistics_and_mask_input(tiny):
  cfg, module, variables = tiny
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.uniform(-1, 1, (8, 16, 16, 3)), jnp.float32)
  m = jnp.asarray(rng.uniform(size=(8, 16, 16, 1)) < 0.5, jnp.float32)
  apply_train = jax.jit(lambda v, x, m: module.apply(v, x, m, train=True, mutable=["batch_stats"]))
  ws, updates = apply_train(variables, x, m)
  assert ws.shape == (8, cfg.num_ws, cfg.w_dim) and np.isfinite(np.asarray(ws)).all()
  old, new = variables["batch_stats"]["bn1"]["mean"], updates["batch_stats"]["bn1"]["mean"]
  assert not np.allclose(old, new)                                    # running stats move
  eval_fn = jax.jit(lambda v, x, m: module.apply(v, x, m))
  # Eval mode uses running statistics: each image is encoded independently of the batch.
  np.testing.assert_allclose(eval_fn(variables, x, m)[:2], eval_fn(variables, x[:2], m[:2]),
                             atol=1e-5)
  # Only the known pixels matter: x ⊙ m is what the network sees.
  x_other = jnp.where(m > 0, x, -x)
  np.testing.assert_allclose(eval_fn(variables, x, m), eval_fn(variables, x_other, m), atol=1e-6)
  assert not np.allclose(eval_fn(variables, x, m), eval_fn(variables, x, None))


@pytest.mark.parametrize("axis_type", ["Auto", "Explicit"])
def test_batchnorm_is_global_under_a_batch_sharded_jit(tiny, axis_type):
  """Batch statistics over a sharded batch are the global ones (synchronised BN)."""
  _, module, variables = tiny
  mesh = jax.make_mesh((jax.device_count(),), ("data",),
                       axis_types=(getattr(jax.sharding.AxisType, axis_type),))
  n = 2 * jax.device_count()
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.uniform(-1, 1, (n, 16, 16, 3)), jnp.float32)
  m = jnp.ones((n, 16, 16, 1), jnp.float32)
  fn = jax.jit(lambda v, x, m: module.apply(v, x, m, train=True, mutable=["batch_stats"]))
  ws_ref, st_ref = fn(variables, x, m)
  shard = NamedSharding(mesh, P("data"))
  ws, st = fn(variables, jax.device_put(x, shard), jax.device_put(m, shard))
  np.testing.assert_allclose(ws, ws_ref, atol=3e-4)
  np.testing.assert_allclose(st["batch_stats"]["bn1"]["var"], st_ref["batch_stats"]["bn1"]["var"],
                             rtol=1e-4)
  # Per-device statistics (2 images each) would give clearly different outputs.
  ws_local, _ = fn(variables, x[:2], m[:2])
  assert np.abs(np.asarray(ws_local) - np.asarray(ws_ref[:2])).max() > 100 * 3e-4
