"""SSN generator: transfer from the reference StyleGAN2 reproduces it; shapes and knobs."""

import jax
import ml_collections
import numpy as np
import pytest

import rosinality_recipe as recipe
from jaxspatial.convert import rosinality as convert_rosinality
from jaxspatial.models import ssn, stylegan2


@pytest.fixture(scope="module")
def reference(reference_dir):
  cfg_dir = reference_dir / "stylegan2_rosinality" / "cfgA_small"
  g_sd, _, _ = recipe.state_dicts(cfg_dir)
  model_cfg = convert_rosinality.infer_generator_config(g_sd, 1)
  g_vars = convert_rosinality.convert_generator(g_sd, model_cfg)
  models, config, summary = ssn.transfer_from_stylegan2(
      {"g_ema": g_vars}, ml_collections.ConfigDict({"model": model_cfg}), ["converted"])
  return dict(inputs=dict(np.load(cfg_dir / "inputs.npz")),
              outputs=dict(np.load(cfg_dir / "outputs.npz")),
              sg2_cfg=model_cfg, sg2_vars=g_vars, models=models, config=config, summary=summary)


def _tol(ref):
  return 1e-4 * max(1.0, float(np.abs(ref).max()))


def test_transfer_config_and_summary(reference):
  m = reference["config"].model
  assert (m.kind, m.grid_h, m.grid_w, m.z_dim, m.n_mlp, m.resolution) == ("ssn", 4, 4, 32, 3, 8)
  assert "transferred to SSN" in reference["summary"][-1]
  enc = reference["models"]["g_ema"]["params"]["encoder"]
  assert float(enc["block_0"]["gain"]) == 0.0


def test_spatially_constant_z_reproduces_stylegan2(reference):
  """Paper §3.4 transfer + identity-like encoder: constant z == the source StyleGAN2."""
  z = reference["inputs"]["z"]                                  # (4, 32)
  z_grid = np.broadcast_to(z[:, None, None], (4, 4, 4, 32))
  g = ssn.build_generator(reference["config"].model)
  sg2 = stylegan2.Generator(resolution=8, z_dim=32, w_dim=32, n_mlp=3,
                            channels=stylegan2.ChannelTable(channel_multiplier=1))
  with jax.default_matmul_precision("highest"):
    got = np.asarray(g.apply(reference["models"]["g_ema"], z_grid))
    ours = np.asarray(sg2.apply(reference["sg2_vars"], z))
  want = recipe.to_nhwc(reference["outputs"]["img_noise_buffers"])
  assert np.abs(got - want).max() <= _tol(want)
  np.testing.assert_allclose(got, ours, atol=2e-5)


def test_conv_clamp_reaches_the_ssn_layers(reference):
  """``model.conv_clamp`` (which ``mixed_precision_res`` needs) clips SSN's styled convs and
  ToRGBs as StyleGAN2's: a spatially constant z still reproduces the clamped StyleGAN2."""
  z = reference["inputs"]["z"]
  z_grid = np.broadcast_to(z[:, None, None], (4, 4, 4, 32))
  cfg = reference["config"].model.copy_and_resolve_references()
  cfg.conv_clamp = 1.0
  g = ssn.build_generator(cfg)
  sg2 = stylegan2.Generator(resolution=8, z_dim=32, w_dim=32, n_mlp=3, conv_clamp=1.0,
                            channels=stylegan2.ChannelTable(channel_multiplier=1))
  with jax.default_matmul_precision("highest"):
    got = np.asarray(g.apply(reference["models"]["g_ema"], z_grid))
    ours = np.asarray(sg2.apply(reference["sg2_vars"], z))
  unclamped = recipe.to_nhwc(reference["outputs"]["img_noise_buffers"])
  assert np.abs(got - unclamped).max() > 0.1                    # the clamp binds
  np.testing.assert_allclose(got, ours, atol=2e-5)


def test_spatially_constant_w_plus_reproduces_stylegan2(reference):
  w_plus = reference["inputs"]["w_plus"]                        # (4, num_ws, 32)
  ws = np.broadcast_to(w_plus[:, :, None, None], (4, 4, 4, 4, 32))
  g = ssn.build_generator(reference["config"].model)
  with jax.default_matmul_precision("highest"):
    got = np.asarray(g.apply(reference["models"]["g_ema"], ws, method=ssn.SSNGenerator.synthesize))
  want = recipe.to_nhwc(reference["outputs"]["img_wplus"])
  assert np.abs(got - want).max() <= _tol(want)


def test_transfer_rejects_mismatched_weights(reference):
  bad = jax.tree.map(np.asarray, reference["sg2_vars"])
  del bad["params"]["synthesis"]["to_rgb1"]["bias"]
  with pytest.raises(ValueError, match="missing: params/synthesis/to_rgb1/bias"):
    ssn.transfer_generator(bad, reference["config"].model)


TINY = dict(z_dim=8, w_dim=16, n_mlp=2, channel_base=64, channel_max=16)


@pytest.mark.parametrize("grid,upsample", [((8, 8), "nearest"), ((2, 4), "bilinear")])
def test_grids_upsample_modes_and_identity_encoder(grid, upsample):
  """8x8 blocks on an 8 px image (the 4 px layers average blocks), 2x4 blocks upsampled."""
  cfg = ssn.ssn_model_config(8, grid=grid, style_upsample=upsample, **TINY)
  g = ssn.build_generator(cfg)
  z = jax.random.normal(jax.random.key(0), (2, *grid, 8))

  @jax.jit
  def run(z):
    variables = g.init(jax.random.key(1), z)
    w = g.apply(variables, z, method=ssn.SSNGenerator.mapping)
    mlp = stylegan2.MappingNetwork(16, 2).apply({"params": variables["params"]["mapping"]}, z)
    ws = g.apply(variables, z, 1.0, z[::-1], 2, method=ssn.SSNGenerator.styles)
    img, feats = g.apply(variables, z, noise_mode="random", return_features=True,
                         rngs={"noise": jax.random.key(2)})
    return w, mlp, ws, img, feats

  w, mlp, ws, img, feats = run(z)
  assert w.shape == (2, *grid, 16)
  np.testing.assert_allclose(w, mlp, rtol=1e-6)        # the encoder is the identity at init
  assert ws.shape == (2, g.num_ws, *grid, 16)
  np.testing.assert_array_equal(ws[:, 2], w[::-1])
  assert img.shape == (2, 8, 8, 3) and np.isfinite(np.asarray(img)).all()
  assert [f.shape[1] for f in feats] == [4, 8]


def test_bad_grid_and_upsample_mode_raise():
  with pytest.raises(ValueError, match="power of two"):
    ssn.ssn_model_config(16, grid=(3, 4), **TINY)
  with pytest.raises(ValueError, match="power of two"):
    ssn.ssn_model_config(8, grid=(16, 16), **TINY)
  with pytest.raises(ValueError, match="style_upsample"):
    ssn.build_generator(ssn.ssn_model_config(16, style_upsample="cubic", **TINY))
