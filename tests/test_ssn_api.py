"""js.ssn: block RNG (Definition 1), SSNModel via convert_torch --target ssn, the resample
command, the distortion metric and the training family's R_D term."""

import collections

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

import jaxspatial as js
import rosinality_recipe as recipe
from jaxspatial import cli, convert_torch, resample, ssn
from jaxspatial.benchmarks import ssn as bench_ssn
from jaxspatial.cli import UserError
from jaxspatial.models import ssn as ssn_models
from jaxspatial.training import ssn as ssn_training

torch = pytest.importorskip("torch")


# ---------------------------------------------------------------------- Definition 1


def test_resampling_every_block_in_turn_equals_a_fresh_sample():
  z = ssn.sample_z(3, 5, (4, 4), 6)
  order = np.random.default_rng(0).permutation(16)
  for a in order:
    z = ssn.resample_blocks(z, [divmod(int(a), 4)], seed=11)
  np.testing.assert_array_equal(z, ssn.sample_z(11, 5, (4, 4), 6))


def test_resampling_changes_only_the_listed_blocks():
  z = ssn.sample_z(0, 3, (4, 4), 6)
  z2 = ssn.resample_blocks(z, [(0, 1), (0, 2)], seed=1)
  changed = np.any(z2 != z, axis=-1)
  want = np.zeros((3, 4, 4), bool)
  want[:, 0, 1:3] = True
  np.testing.assert_array_equal(changed, want)


def test_block_values_do_not_depend_on_n_or_grid():
  big = ssn.sample_z(7, 4, (8, 8), 5)
  np.testing.assert_array_equal(ssn.sample_z(7, 2, (4, 4), 5), big[:2, :4, :4])
  assert abs(float(big.mean())) < 0.15 and abs(float(big.std()) - 1) < 0.1


def test_bad_blocks_are_user_errors():
  z = ssn.sample_z(0, 1, (4, 4), 2)
  with pytest.raises(UserError, match="outside the 4x4"):
    ssn.resample_blocks(z, [(4, 0)], 0)
  with pytest.raises(UserError, match="ROW,COL"):
    cli.parse_row_col("1;2", int)


# ---------------------------------------------------------------------- the model


@pytest.fixture(scope="module")
def converted(reference_dir, tmp_path_factory):
  """cfgA_small as a bare rosinality generator file, converted with --target ssn."""
  cfg_dir = reference_dir / "stylegan2_rosinality" / "cfgA_small"
  g_sd, _, _ = recipe.state_dicts(cfg_dir)
  tmp = tmp_path_factory.mktemp("ssn")
  torch.save(collections.OrderedDict((k, torch.from_numpy(v)) for k, v in g_sd.items()),
             tmp / "g.pt")
  convert_torch.main([str(tmp / "g.pt"), "--out", str(tmp / "ssn"), "--target", "ssn",
                      "--w-avg-samples", "64"])
  return dict(dir=tmp / "ssn", tmp=tmp, inputs=dict(np.load(cfg_dir / "inputs.npz")),
              outputs=dict(np.load(cfg_dir / "outputs.npz")))


def test_converted_ssn_reproduces_the_pytorch_stylegan2(converted):
  m = js.load(converted["dir"])
  assert isinstance(m, ssn.SSNModel) and m.kind == "ssn" and m.grid == (4, 4)
  z = converted["inputs"]["z"]
  z_grid = np.ascontiguousarray(np.broadcast_to(z[:, None, None], (4, 4, 4, 32)))
  assert m.mapping(z_grid).shape == (4, 4, 4, 32)
  got = m.generate(z_grid)
  want = recipe.to_nhwc(converted["outputs"]["img_noise_buffers"])
  assert np.abs(got - want).max() <= 1e-4 * np.abs(want).max()
  assert m.sample_z(5, 2).shape == (2, 4, 4, 32)
  zs = m.sample_z(5, 2)
  w = m.mapping(zs)
  ws = np.repeat((m.w_avg + 0.5 * (w - m.w_avg))[:, None], m.num_ws, axis=1)
  np.testing.assert_allclose(m.generate(zs, truncation=0.5), m.synthesize(ws), atol=1e-5)
  with pytest.raises(UserError, match=r"expected \(n, 4, 4, 32\)"):
    m.generate(z)
  with pytest.raises(UserError, match="expected"):
    m.synthesize(np.zeros((1, m.num_ws, 32), np.float32))


def test_resample_command(converted, capsys):
  out = converted["tmp"] / "strip.png"
  npy = converted["tmp"] / "strip.npy"
  resample.main(["--checkpoint", str(converted["dir"]), "--seed", "3", "--blocks", "0,1",
                 "1,2", "--num", "3", "--tile", "64", "--out", str(out), "--save-npy", str(npy)])
  assert "3 resamples" in capsys.readouterr().out
  images = np.load(npy)
  assert images.shape == (4, 8, 8, 3)
  m = js.load(converted["dir"])
  np.testing.assert_allclose(images[:1], m.generate(m.sample_z(3, 1)), atol=1e-5)
  z1 = ssn.resample_blocks(m.sample_z(3, 1), [(0, 1), (1, 2)], seed=4)
  np.testing.assert_allclose(images[1:2], m.generate(z1), atol=1e-5)
  strip = np.asarray(Image.open(out))
  assert strip.shape[1] > 4 * 64 and strip.shape[0] > 64
  assert (strip == resample.OUTLINE).all(axis=-1).sum() > 0
  with pytest.raises(UserError, match="outside"):
    resample.main(["--checkpoint", str(converted["dir"]), "--blocks", "0,9", "--out", str(out)])


class _ToyModel:
  """Stands in for an SSNModel: block (r, c) of the image shows tanh(z[r, c]) plus
  ``leak`` times the mean over blocks of z[..., 0] on every pixel."""
  grid = (2, 2)

  def __init__(self, leak):
    self.leak = leak

  def sample_z(self, seed, n):
    return ssn.sample_z(seed, n, self.grid, 3)

  def generate(self, z, truncation=1.0, noise="const"):
    x = np.tanh(z) * 0.5 + self.leak * z[..., :1].mean(axis=(1, 2), keepdims=True)
    return x.repeat(4, axis=1).repeat(4, axis=2)


def test_distortion_metric_on_toy_generators():
  zero = ssn.distortion(_ToyModel(0.0), num_samples=8)
  assert zero["distortion"] == 0.0 and zero["num_blocks"] == 4
  leaky = ssn.distortion(_ToyModel(0.1), num_samples=64, seed=2)
  z, zp = ssn.sample_z(2, 64, (2, 2), 3), ssn.sample_z(3, 64, (2, 2), 3)
  # every channel of blocks b != a moves by leak * dz / 4; D sums the 3 channels' squares
  d = 3 * (0.1 * (zp[..., 0] - z[..., 0]) / 4) ** 2        # (n, 2, 2): resampling block a
  np.testing.assert_allclose(leaky["distortion"], d.mean(), rtol=1e-4)
  assert 0 < leaky["ci95"] < leaky["distortion"]


# ---------------------------------------------------------------------- training family


def test_family_distortion_loss_is_differentiable():
  cfg = ml_collections.ConfigDict({
      "model": ssn_models.ssn_model_config(8, grid=(2, 2), z_dim=4, w_dim=8, n_mlp=1,
                                           channel_base=64, channel_max=8),
      "loss": {"distortion_weight": 100.0}})
  g = ssn_models.build_generator(cfg.model)
  plugin = ssn_training.SSNPlugin(cfg, g, None)
  inputs = plugin.sample_inputs(jax.random.key(0), 4)
  assert inputs["z_resample"].shape == (4, 2, 2, 4)
  variables = jax.jit(g.init)(jax.random.key(1), *plugin.init_inputs())

  @jax.jit
  def loss_and_grad(params):
    def f(p):
      loss, metrics = plugin.extra_generator_loss({**variables, "params": p}, None, inputs,
                                                  None, None, jax.random.key(2))
      return loss, metrics
    return jax.value_and_grad(f, has_aux=True)(params)

  (loss, metrics), grads = loss_and_grad(variables["params"])
  np.testing.assert_allclose(loss, 100.0 * metrics["distortion_reg"], rtol=1e-6)
  assert float(loss) > 0
  assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(grads))
  cfg.loss.distortion_weight = 0.0
  off, _ = ssn_training.SSNPlugin(cfg, g, None).extra_generator_loss(
      variables, None, inputs, None, None, jax.random.key(2))
  assert float(off) == 0.0


@pytest.mark.slow
def test_sigma_e_benchmark_table():
  """Tiny sizes: closed-form and direct sigma_E agree; the table has its columns."""
  rows = bench_ssn.bench_sigma_e((8,), channels=8, batch=2, repeats=1)
  assert [r["up"] for r in rows] == [False, True]
  assert all(r["max_rel_diff"] < 1e-5 for r in rows)
  assert all({"resolution", "closed_s", "direct_s", "speedup", "layer_s"} <= set(r) for r in rows)


def test_transfer_init_models_from_a_stylegan2_checkpoint(tmp_path):
  from jaxspatial import families
  from jaxspatial import models
  from jaxspatial import checkpoint
  kw = dict(z_dim=8, w_dim=8, n_mlp=1, channel_base=64, channel_max=8)
  sg2_cfg = models.stylegan2_model_config(8, **kw)
  g = families.build_generator(sg2_cfg)
  g_vars = jax.jit(g.init)(jax.random.key(0), jnp.zeros((1, 8)))
  checkpoint.save_model_dir(tmp_path / "sg2", {"g_ema": g_vars},
                            ml_collections.ConfigDict({"model": sg2_cfg}))
  ssn_cfg = ssn_models.ssn_model_config(8, grid=(2, 2), **kw)
  out = ssn_training.transfer_init_models(tmp_path / "sg2", ssn_cfg)
  assert set(out) == {"g", "g_ema"}
  assert float(out["g"]["params"]["encoder"]["block_0"]["gain"]) == 0.0
  np.testing.assert_array_equal(out["g"]["params"]["synthesis"]["const"],
                                g_vars["params"]["synthesis"]["const"])
  with pytest.raises(UserError, match="n_mlp"):
    ssn_training.transfer_init_models(tmp_path / "sg2", ssn_models.ssn_model_config(8, grid=(2, 2),
                                                                           **{**kw, "n_mlp": 2}))
