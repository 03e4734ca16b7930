"""bfloat16 compute (``model.compute_dtype``): parameters and Adam state stay float32, the
networks compute in bfloat16, R1 and path length in float32 (``gan_step.float32_plugin``).

Tolerances (bfloat16 keeps 8 mantissa bits, ~0.4% per rounding):
* generator images on the rosinality parity configs: RMS error <= 2% of the float32 images'
  RMS, max error <= 3% of their max (measured 0.8-1.1% and 1.1-1.3%);
* discriminator logits: within 0.03 of float32 (measured <= 0.013 at |logits| ~ 0.1-0.3);
* training: 3 steps of the tiny preset (R1 and path length at steps 0 and 2) finite, D and G
  losses within 0.05 of the float32 run's; 8-device sharded bf16 steps equal 1-device bf16
  steps: at most 1% of G_ema/D parameters differ by more than 2e-3, mean difference <= 5e-4,
  D losses within 0.01 (bf16 rounding of differently ordered partial sums).
"""

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxspatial import families
from jaxspatial.convert import rosinality as convert_rosinality
from jaxspatial.training import gan_step, loop
from rosinality_recipe import state_dicts, to_nhwc
from helpers import batches, load_config, run_steps


@pytest.fixture(scope="module", params=["cfgA_small", "cfgA"])
def parity_outputs(request, reference_dir):
  cfg_dir = reference_dir / "stylegan2_rosinality" / request.param
  g_sd, d_sd, ctor = state_dicts(cfg_dir)
  cfg = convert_rosinality.infer_generator_config(g_sd, ctor["channel_multiplier"])
  g_vars = convert_rosinality.convert_generator(g_sd, cfg)
  d_vars = convert_rosinality.convert_discriminator(d_sd, cfg)
  inputs = np.load(cfg_dir / "inputs.npz")
  out = {}
  for dtype in ("float32", "bfloat16"):
    cfg.compute_dtype = dtype
    g, d = families.build_generator(cfg), families.build_discriminator(cfg)
    out[dtype] = (np.asarray(g.apply(g_vars, inputs["z"])),
                  np.asarray(d.apply(d_vars, to_nhwc(inputs["d_images"]))))
  reference = to_nhwc(np.load(cfg_dir / "outputs.npz")["img_noise_buffers"])
  return out, reference


def test_bf16_generator_images_stay_within_tolerance_of_float32(parity_outputs):
  out, reference = parity_outputs
  f32, bf16 = out["float32"][0], out["bfloat16"][0]
  assert bf16.dtype == np.float32                       # images leave the network as float32
  np.testing.assert_allclose(f32, reference, atol=1e-4 * np.abs(reference).max())
  rms = lambda a: float(np.sqrt(np.mean(np.square(a))))
  assert rms(bf16 - f32) <= 0.02 * rms(f32)
  assert np.abs(bf16 - f32).max() <= 0.03 * np.abs(f32).max()
  assert np.abs(bf16 - f32).max() > 0                   # bf16 really ran


def test_bf16_discriminator_logits_stay_within_tolerance_of_float32(parity_outputs):
  out, _ = parity_outputs
  np.testing.assert_allclose(out["bfloat16"][1], out["float32"][1], atol=0.03)


@pytest.fixture(scope="module")
def bf16_runs():
  f32 = load_config("tiny")
  bf16 = copy.deepcopy(f32)
  bf16.model.compute_dtype = "bfloat16"
  data = batches(f32, 3)
  return run_steps(f32, 1, data), run_steps(bf16, 1, data), run_steps(bf16, 8, data)


@pytest.mark.slow
def test_bf16_training_steps_are_finite_and_track_float32_losses(bf16_runs):
  (_, h32), (one, h16), _ = bf16_runs
  assert [bool(m["r1_applied"]) for m in h16] == [True, False, True]
  for m32, m16 in zip(h32, h16):
    for key in ("d_loss", "g_loss", "r1_penalty", "pl_penalty"):
      assert np.isfinite(m16[key]), key
    for key in ("d_loss", "g_loss"):
      assert abs(float(m16[key]) - float(m32[key])) <= 0.05, (key, m16[key], m32[key])
  for leaf in jax.tree.leaves((one.state.g, one.state.d, one.state.opt_g, one.state.opt_d)):
    if jnp.issubdtype(leaf.dtype, jnp.floating):
      assert leaf.dtype == jnp.float32                  # master weights and Adam in float32


@pytest.mark.slow
def test_sharded_bf16_steps_equal_single_device_bf16(bf16_runs):
  """bf16 rounds differently ordered partial sums differently, and Adam turns a near-zero
  gradient's rounding into up to a full step for that one element; a real bug (a wrong shard,
  a missed update) moves nearly every element by ~lr = 2.5e-3 per step."""
  _, (one, h1), (eight, h8) = bf16_runs
  assert len(eight.mesh.devices.flat) == 8
  trees = lambda t: (t.state.g_ema["params"], t.state.d["params"])
  a = np.concatenate([np.ravel(x) for x in jax.tree.leaves(jax.device_get(trees(one)))])
  b = np.concatenate([np.ravel(x) for x in jax.tree.leaves(jax.device_get(trees(eight)))])
  diff = np.abs(a - b)
  assert np.mean(diff > 2e-3) <= 0.01 and diff.mean() <= 5e-4, (np.mean(diff > 2e-3), diff.mean())
  for m1, m8 in zip(h1, h8):
    np.testing.assert_allclose(m1["d_loss"], m8["d_loss"], atol=1e-2)


def test_regularisers_run_in_float32():
  config = load_config("tiny")
  config.model.compute_dtype = "bfloat16"
  plugin = loop.make_plugin(config)
  reg = gan_step.float32_plugin(plugin)
  assert plugin.generator.dtype == jnp.bfloat16 and reg.generator.dtype == jnp.float32
  assert reg.discriminator.dtype == jnp.float32 and type(reg) is type(plugin)
  config.model.compute_dtype = "float32"
  same = loop.make_plugin(config)
  assert gan_step.float32_plugin(same) is same
