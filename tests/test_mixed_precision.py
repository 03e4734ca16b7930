"""bfloat16 compute (``model.compute_dtype``): parameters and Adam state stay float32, the
networks compute in bfloat16, R1 and path length in float32 (``gan_step.float32_plugin``).
stylegan2-ada's mixed precision (``model.mixed_precision_res`` N, with ``conv_clamp``): only
the blocks of the top N resolutions of G and D compute in bfloat16.

Tolerances (bfloat16 keeps 8 mantissa bits, ~0.4% per rounding):
* generator images on the rosinality parity configs: RMS error <= 2% of the float32 images'
  RMS, max error <= 3% of their max (measured 0.8-1.1% and 1.1-1.3%);
* discriminator logits: within 0.03 of float32 (measured <= 0.014 at |logits| ~ 0.1-0.3);
* training: 3 steps of the tiny preset (R1 and path length at steps 0 and 2) finite, D and G
  losses within 0.05 of the float32 run's; 8-device sharded bf16 steps equal 1-device bf16
  steps: at most 1% of G_ema/D parameters differ by more than 2e-3, mean difference <= 5e-4,
  D losses within 0.01 (bf16 rounding of differently ordered partial sums).

Mixed precision (``mixed_precision_res`` 2, ``conv_clamp`` 256; compared with the clamped
float32 network) rounds to bfloat16 on fewer layers of every path than full bfloat16, so it
keeps bfloat16's tolerances and must also have no more RMS error than full bfloat16 (G
images, D logits). Measured on cfgA (32 px: 16 and 32 px in bf16; the 4 parity samples) and
cfgA_small (8 px: 8 px in bf16; 16 samples): image RMS error 0.69 % / 0.60 % of the images'
RMS (full bf16 0.82 % / 0.78 %), logits RMS error 0.0013 / 0.0045 (full bf16 0.0093 /
0.0084). The blocks below the threshold are float32 and, in G, equal to the float32 run's to
float32 rounding (rtol 1e-5). Training: 2 steps of the tiny preset with its 16 px blocks in
bf16 (R1 and path length at step 0) finite, D and G losses within 0.05 of float32's.
"""

import copy

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxspatial import families
from jaxspatial.benchmarks import device
from jaxspatial.convert import rosinality as convert_rosinality
from jaxspatial.errors import UserError
from jaxspatial.models import stylegan2 as sg2
from jaxspatial.training import config_lib, gan_step, loop
from rosinality_recipe import state_dicts, to_nhwc
from helpers import batches, load_config, run_steps

MIXED_RES = 2
"""``model.mixed_precision_res`` of the mixed runs: bfloat16 at 16 and 32 px on cfgA (32 px),
at 8 px only on cfgA_small (8 px: stylegan2-ada's threshold never goes below 8)."""
CLAMP = 256.0
RUNS = {"float32": {}, "bfloat16": {"compute_dtype": "bfloat16"},
        "float32 clamped": {"conv_clamp": CLAMP},
        "mixed": {"conv_clamp": CLAMP, "mixed_precision_res": MIXED_RES}}
"""The model settings compared on each parity config. Mixed precision needs ``conv_clamp``, so
its reference is the clamped float32 network (256 does not bind on these weights: the clamped
and unclamped float32 outputs differ by <= 6e-6, compilation noise)."""
PARITY = 4
BATCH = {"cfgA_small": 16, "cfgA": PARITY}
"""The parity inputs (the first 4 of each batch) and each config's batch. cfgA_small's 12 more
(seeded z, uniform [-1, 1] images) let mixed and full bfloat16's D errors compare over more
than its 4 parity logits, where mixed's max error was the larger (0.0062 vs 0.0048): the order
is expected on average, not per logit. cfgA (32 px) is the costly one and keeps 4."""


@pytest.fixture(scope="module", params=["cfgA_small", "cfgA"])
def parity_outputs(request, reference_dir):
  """Per run of :data:`RUNS`: (G images, G's per-block features, D logits, D's features)."""
  cfg_dir = reference_dir / "stylegan2_rosinality" / request.param
  g_sd, d_sd, ctor = state_dicts(cfg_dir)
  cfg = convert_rosinality.infer_generator_config(g_sd, ctor["channel_multiplier"])
  g_vars = convert_rosinality.convert_generator(g_sd, cfg)
  d_vars = convert_rosinality.convert_discriminator(d_sd, cfg)
  inputs = np.load(cfg_dir / "inputs.npz")
  rng, extra = np.random.default_rng(0), BATCH[request.param] - PARITY
  z = np.concatenate([inputs["z"], rng.standard_normal((extra, cfg.z_dim))], 0)
  d_images = to_nhwc(inputs["d_images"])
  d_images = np.concatenate([d_images, rng.uniform(-1, 1, (extra,) + d_images.shape[1:])], 0)
  out = {}
  for name, overrides in RUNS.items():
    m = copy.deepcopy(cfg)
    m.update(overrides)
    g, d = families.build_generator(m), families.build_discriminator(m)
    img, g_features = jax.jit(lambda v, z: g.apply(v, z, return_features=True))(
        g_vars, z.astype(np.float32))
    logits, d_features = jax.jit(lambda v, x: d.apply(v, x, return_features=True))(
        d_vars, d_images.astype(np.float32))
    out[name] = (np.asarray(img), jax.device_get(g_features), np.asarray(logits),
                 jax.device_get(d_features))
  reference = to_nhwc(np.load(cfg_dir / "outputs.npz")["img_noise_buffers"])
  return out, reference, int(cfg.resolution)


def _rms(a) -> float:
  return float(np.sqrt(np.mean(np.square(a))))


def test_bf16_generator_images_stay_within_tolerance_of_float32(parity_outputs):
  out, reference, _ = parity_outputs
  f32, bf16 = out["float32"][0][:PARITY], out["bfloat16"][0][:PARITY]
  assert bf16.dtype == np.float32                       # images leave the network as float32
  np.testing.assert_allclose(f32, reference, atol=1e-4 * np.abs(reference).max())
  assert _rms(bf16 - f32) <= 0.02 * _rms(f32)
  assert np.abs(bf16 - f32).max() <= 0.03 * np.abs(f32).max()
  assert np.abs(bf16 - f32).max() > 0                   # bf16 really ran


def test_bf16_discriminator_logits_stay_within_tolerance_of_float32(parity_outputs):
  out, _, _ = parity_outputs
  np.testing.assert_allclose(out["bfloat16"][2][:PARITY], out["float32"][2][:PARITY], atol=0.03)


def test_mixed_precision_images_and_logits_are_no_further_from_float32_than_bf16(
    parity_outputs):
  """bfloat16's tolerances, and no more RMS error than full bfloat16 over the batch (G images,
  D logits), each against float32 with its own clamp setting. Single-element maxima are not
  ordered: XLA:CPU rounds bfloat16 at fusion boundaries, and the worst pixel of cfgA came out
  0.122 (mixed) against 0.121 (full bfloat16) in one compilation, 0.103 in another."""
  out, _, _ = parity_outputs
  (f32, logits32), (bf16, logits16) = out["float32"][::2], out["bfloat16"][::2]
  (f32c, logits32c), (mixed, logits_mixed) = out["float32 clamped"][::2], out["mixed"][::2]
  assert mixed.dtype == logits_mixed.dtype == np.float32
  assert 0 < _rms(mixed - f32c) <= min(0.02 * _rms(f32c), _rms(bf16 - f32))
  assert np.abs(mixed - f32c).max() <= 0.03 * np.abs(f32c).max()
  assert np.abs(logits_mixed - logits32c).max() <= 0.03
  assert 0 < _rms(logits_mixed - logits32c) <= _rms(logits16 - logits32)


def test_mixed_precision_keeps_the_blocks_below_the_threshold_float32(parity_outputs):
  """stylegan2-ada's rule: bfloat16 from ``max(2 ** (log2(res) + 1 - N), 8)`` px up. G's
  float32 blocks give the float32 run's features to float32 rounding (the two programs are
  compiled separately, so XLA may order a sum differently; one bfloat16 rounding would be
  ~4e-3); D's take bfloat16-computed input from the blocks above them but compute in float32."""
  out, _, resolution = parity_outputs
  expected_bf16 = {32: {16, 32}, 8: {8}}[resolution]      # N = 2 (MIXED_RES), by hand
  g32, g_mixed = out["float32 clamped"][1], out["mixed"][1]
  for i, (a, b) in enumerate(zip(g32, g_mixed)):
    block = 4 * 2 ** i
    if block in expected_bf16:
      assert b.dtype == jnp.bfloat16, block
    else:
      assert b.dtype == np.float32, block
      np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6 * np.abs(a).max())
  # D's feature at r is the output of the block whose input is 2r (from_rgb's: resolution).
  d_mixed = out["mixed"][3]
  for r, h in d_mixed.items():
    block_input = r if r == resolution else 2 * r
    assert h.dtype == (jnp.bfloat16 if block_input in expected_bf16 else np.float32), r


def test_mixed_precision_threshold_is_stylegan2_adas():
  """paper256's ``num_fp16_res=4``: 32-256 px in reduced precision; 0: none."""
  bf16 = lambda res, n: {b for b in (4, 8, 16, 32, 64, 128, 256)
                         if b <= res and sg2.block_dtype(b, res, jnp.float32, n) == jnp.bfloat16}
  assert bf16(256, 4) == {32, 64, 128, 256}
  assert bf16(256, 0) == set() and bf16(16, 9) == {8, 16}


@pytest.mark.parametrize("family", ["ssn", "spatialgan"])
def test_every_family_runs_its_top_blocks_in_bf16(family):
  """SSN's and SpatialGAN's layers (spatially modulated convs; SELs before the convs) go
  through the shared synthesis loop: with the tiny preset's top resolution (16 px) in
  bfloat16, every StyledConv and ToRGB of a 16 px block takes bfloat16 input and every other
  one float32, and the ToRGBs sum the image in float32 (traced only, nothing compiled;
  StyleGAN2's own: the parity configs above)."""
  config = load_config("tiny", family)
  config.model.update(conv_clamp=256.0, mixed_precision_res=1)
  plugin = loop.make_plugin(config)
  key = jax.random.key(0)
  seen = []

  def record(call, args, kwargs, context):
    out = call(*args, **kwargs)
    if isinstance(context.module, (sg2.StyledConv, sg2.ToRGB)):
      seen.append((type(context.module).__name__, out.shape[1], args[0].dtype, out.dtype))
    return out

  def images(k):
    g_vars = plugin.generator.init(k, *plugin.init_inputs(), **plugin.label_kwargs())
    inputs = plugin.sample_inputs(k, 2)
    ws, _ = plugin.styles(g_vars, inputs, k, 0.0)
    with nn.intercept_methods(record):
      return plugin.synthesize(g_vars, ws, inputs, k)

  assert jax.eval_shape(images, key).dtype == jnp.float32
  res = config.model.resolution      # a styled conv per noise input, a ToRGB per block
  assert len(seen) == sg2.num_noises(res) + sg2.log2_resolution(res) - 1
  for kind, block, dtype_in, dtype_out in seen:
    assert dtype_in == (jnp.bfloat16 if block == 16 else jnp.float32), (kind, block)
    if kind == "ToRGB":
      assert dtype_out == jnp.float32, block       # the image sums in float32


@pytest.mark.parametrize("family", ["stylegan2", "ssn", "spatialgan"])
def test_paper256_keeps_float32_without_a_clamp(family):
  """stylegan2-ada's paper256 runs num_fp16_res=4 with conv_clamp=256; ours documents the
  flags (configs/stylegan2.py) and keeps the float32, unclamped network its runs used."""
  m = load_config("paper256", family).model
  assert (m.mixed_precision_res, m.conv_clamp, m.compute_dtype) == (0, None, "float32")


def test_device_bench_sets_up_stylegan2_adas_mixed_precision():
  config = device.family_config("stylegan2", "tiny", 0, "float32", mixed_precision_res=1)
  assert (config.model.mixed_precision_res, config.model.conv_clamp) == (1, 256.0)
  assert device.dtype_label(config) == "mixed 1 (bf16 >= 16 px)"
  assert device.dtype_label(device.family_config("ssn", "tiny", 0, "bfloat16")) == "bfloat16"
  with pytest.raises(UserError, match="--dtype float32"):
    device.family_config("stylegan2", "tiny", 0, "bfloat16", mixed_precision_res=1)


@pytest.mark.parametrize("overrides, message", [
    (dict(mixed_precision_res=2), "needs model.conv_clamp"),
    (dict(mixed_precision_res=2, conv_clamp=256.0, compute_dtype="bfloat16"),
     "needs model.compute_dtype=float32"),
    (dict(mixed_precision_res=-1), "integer >= 0")])
def test_mixed_precision_refuses_a_config_it_cannot_run(overrides, message):
  config = load_config("tiny")
  config.model.update(overrides)
  with pytest.raises(UserError, match=message):
    config_lib.validate(config, num_devices=1, num_processes=1)


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
def test_mixed_precision_training_steps_are_finite_and_track_float32_losses(bf16_runs):
  """2 steps of the tiny preset with its 16 px blocks in bfloat16 (R1 and path length at step
  0, through float32 copies of the networks), against the float32 run's first two."""
  (_, h32), _, _ = bf16_runs
  config = load_config("tiny")
  config.model.update(conv_clamp=256.0, mixed_precision_res=1)
  trainer, h_mixed = run_steps(config, 1, batches(config, 2))
  assert trainer.plugin.generator.mixed_precision_res == 1
  for m32, m in zip(h32, h_mixed):
    for key in ("d_loss", "g_loss", "r1_penalty", "pl_penalty"):
      assert np.isfinite(m[key]), key
    for key in ("d_loss", "g_loss"):
      assert abs(float(m[key]) - float(m32[key])) <= 0.05, (key, m[key], m32[key])
  assert any(float(m["d_loss"]) != float(m32["d_loss"]) for m32, m in zip(h32, h_mixed))


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
  config.model.update(conv_clamp=256.0, mixed_precision_res=1)
  mixed = loop.make_plugin(config)
  reg = gan_step.float32_plugin(mixed)
  assert mixed.generator.mixed_precision_res == mixed.discriminator.mixed_precision_res == 1
  assert reg.generator.mixed_precision_res == reg.discriminator.mixed_precision_res == 0
