"""EqGAN-SA (genforce/eqgan-sa) parity on shared/reference/eqgan_sa/cfgE: the official
network pickle converted by ``convert_torch`` (read without executing anything), then its
heatmaps, images, D logits and features, GradCAM maps, alignment losses and G gradients
against the official code's outputs (tolerances from the README)."""

import contextlib
import io
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import traverse_util

import jaxspatial as js
import jaxspatial.spatialgan as jsg
from jaxspatial import convert_torch
from jaxspatial.losses import spatialgan as L
from jaxspatial.convert import ada, eqgan, formats
from jaxspatial.models.spatialgan import resize_aligned
from jaxspatial.training.spatialgan import SpatialGANPlugin

LEVELS = {"b8": 4, "b16": 8, "b32": 16}   # official heatmap level key -> D feature resolution


@pytest.fixture(scope="module")
def cfg(reference_dir):
  d = reference_dir / "eqgan_sa" / "cfgE"
  return dict(np.load(d / "inputs.npz")), dict(np.load(d / "outputs.npz"))


@pytest.fixture(scope="module")
def converted(reference_dir, tmp_path_factory):
  """(model dir, stdout) of ``python -m jaxspatial.convert_torch network-snapshot.pkl``."""
  out_dir = tmp_path_factory.mktemp("eqgan") / "cfgE"
  stdout = io.StringIO()
  with contextlib.redirect_stdout(stdout):
    convert_torch.main([str(reference_dir / "eqgan_sa" / "cfgE" / "network-snapshot.pkl"),
                        "--out", str(out_dir)])
  return out_dir, stdout.getvalue()


@pytest.fixture(scope="module")
def model(converted) -> jsg.SpatialGANModel:
  return js.load(converted[0])


def _tol(ref):
  return 1e-4 * max(1.0, float(np.abs(ref).max()))


def _small_tol(ref):
  return 1e-4 * float(np.abs(ref).max()) + 5e-6


def nhwc(a):
  return np.asarray(a).transpose(0, 2, 3, 1)


def close(got, ref, tol=_tol, name=""):
  got = np.asarray(got)
  assert got.shape == np.shape(ref), (name, got.shape, np.shape(ref))
  np.testing.assert_allclose(got, ref, rtol=0, atol=tol(ref), err_msg=name)


def official_heatmaps(inputs) -> jsg.Heatmaps:
  return jsg.Heatmaps.from_eqgan(inputs["centers"], inputs["l2_delta"], inputs["l3_delta"],
                                 float(inputs["sigma"]), inputs["cur_sigma2"],
                                 inputs["cur_sigma3"])


def test_from_eqgan_renders_generate_heatmap_multi(cfg):
  inputs, _ = cfg
  h = official_heatmaps(inputs)
  assert h.levels == (0, 1, 1, 2, 2, 2, 2) and h.parents == (-1, 0, 0, 0, 0, 0, 0)
  for level, key in enumerate(("heatmap_b8", "heatmap_b16", "heatmap_b32")):
    ref = inputs[key].transpose(0, 2, 3, 1)
    np.testing.assert_allclose(np.asarray(h.level_maps(level, 32)), ref, rtol=0,
                               atol=_tol(ref), err_msg=key)
  # The finer centres are children of the level-0 one: moving it moves them.
  moved = h.move(0, 0.1, 0.0)
  np.testing.assert_allclose(moved.centers[:, :, 0] - h.centers[:, :, 0], 0.1, atol=1e-6)


def test_from_eqgan_rejects_other_structures(cfg):
  inputs, _ = cfg
  with pytest.raises(ValueError, match="centres per level"):
    jsg.Heatmaps.from_eqgan(inputs["centers"], inputs["l3_delta"], inputs["l3_delta"], 0.75,
                            inputs["cur_sigma2"], inputs["cur_sigma3"])


def test_conversion_summary(converted, model):
  stdout = converted[1]
  for part in ("format: eqgan-sa", "EqGAN-SA (SpatialGAN with SEL) 32x32: z 32, w 32, "
               "mapping 2 layers, num_ws 8, channels min(1024 // res, 64), SEL in blocks "
               "4,8,16,32, conv_clamp 256, mbstd group 4 x 1",
               "G_ema -> g_ema, G -> g, D -> d", "ignored (float32 weights, float32 compute): "
               "none"):
    assert part in stdout, part
  m = model.config.model
  assert (m.kind, m.encoding, m.coarse, tuple(m.sel_resolutions)) == (
      "spatialgan", "norm", False, (4, 8, 16, 32))


def test_images_and_ws(cfg, model):
  inputs, out = cfg
  h, z = official_heatmaps(inputs), inputs["z"]
  close(model.mapping(z), out["ws_psi1"][:, 0], name="ws_psi1")
  close(model.truncate(model.mapping(z), 0.7), out["ws_psi07"][:, 0], name="ws_psi07")
  close(model.w_avg, out["w_avg"], name="w_avg")
  close(model.generate(z, heatmaps=h), nhwc(out["img_const_psi1"]), name="const psi 1")
  close(model.generate(z, 0.7, heatmaps=h), nhwc(out["img_const_psi07"]), name="const psi .7")
  close(model.generate(z, heatmaps=h, noise="none"), nhwc(out["img_none_psi1"]), name="none")
  close(model.synthesize(inputs["ws_rand"], h), nhwc(out["img_wplus_const"]), name="W+")


def test_conv_clamp_on_wplus_x300(cfg, model):
  """300 x W+ drives the ToRGB outputs past cfgE's conv_clamp 256: the official image is
  clipped there, an unclamped generator is not (max |img| 960 with the 256 clip)."""
  inputs, out = cfg
  assert model.config.model.conv_clamp == 256
  got = model.synthesize(300 * inputs["ws_rand"], official_heatmaps(inputs))
  close(got, nhwc(out["img_wplus_x300_const"]), name="W+ x300")


def test_g_is_not_g_ema_and_per_block_features(cfg, model):
  inputs, out = cfg
  h = official_heatmaps(inputs)
  g = model.generator
  run = jax.jit(lambda v, z, h: g.apply(v, z, h, noise_mode="const", return_features=True))
  g_img, _ = run(model.variables["g"], inputs["z"], h)
  close(g_img, nhwc(out["G_img_const_psi1"]), name="G image")
  assert np.abs(nhwc(out["G_img_const_psi1"]) - nhwc(out["img_const_psi1"])).max() > 1.0
  _, feats = run(model.g_vars, inputs["z"], h)      # the oracle's call was sample 0 alone
  feats = [f[:1] for f in feats]
  for i, res in enumerate((4, 8, 16, 32)):
    close(feats[i], nhwc(out[f"gblk_b{res}_x"]), name=f"block {res}")


def test_discriminator_logits_and_features(cfg, model):
  inputs, out = cfg
  gen, noise = nhwc(inputs["d_gen_images"]), nhwc(inputs["d_noise_images"])
  for k in (2, 4, 8):    # mbstd groups of min(4, k): every batch size is a different network
    close(model.discriminate(gen[:k]), out[f"d_gen_b{k}"][:, 0], name=f"gen batch {k}")
    close(model.discriminate(noise[:k]), out[f"d_noise_b{k}"][:, 0], name=f"noise batch {k}")
  _, feats = jax.jit(lambda v, x: model.discriminator.apply(v, x, return_features=True))(
      model.d_vars, gen[:4])
  for key, r in LEVELS.items():
    close(feats[r], nhwc(out[f"dint_{key}_x"]), name=key)


def test_gradcam_equals_compute_gradcam_multi(cfg, model):
  _, out = cfg
  img = nhwc(out["loss_gen_img"])
  d_apply = L.discriminator_apply(model.discriminator)
  weights = jax.jit(lambda d, x: L.gradcam_weights(d_apply, d, x, tuple(LEVELS.values())))(
      model.d_vars, img)
  cams = model.gradcam(img)
  for level, (key, r) in enumerate(LEVELS.items()):
    close(weights[r], nhwc(out[f"gc_weights_{key}"]), _small_tol, key)
    close(cams[level], out[f"gc_norm_{key}"][:, 0], name=key)


def test_alignment_losses_and_g_gradients(cfg, model):
  """Gmain of loss.py with G (train copy), const noise, the fixed heatmaps, no mixing:
  the losses, then every stored G gradient of ``softplus(-D(G)) + align`` where ``align``
  is the term our training step adds (``SpatialGANPlugin.extra_generator_loss``)."""
  inputs, out = cfg
  h = official_heatmaps(inputs)
  z = inputs["z"]
  got = model.alignment(z, heatmaps=h, network="g")
  for level, key in enumerate(LEVELS):
    np.testing.assert_allclose(got[level], out[f"align_loss_{key}"], atol=1e-3, err_msg=key)
  np.testing.assert_allclose(got["total"], out["align_loss_total"], atol=1e-3)

  config = ml_collections.ConfigDict({"model": model.config.model.to_dict(),
                                      "loss": {"align_weight": 1.0}})
  plugin = SpatialGANPlugin(config, model.generator, model.discriminator)
  g, d_vars, hj = model.generator, model.d_vars, jax.tree.map(jnp.asarray, h)

  def g_loss(params):
    g_vars = {**model.variables["g"], "params": params}
    fake = g.apply(g_vars, jnp.asarray(z), hj, noise_mode="const")
    adv = jax.nn.softplus(-model.discriminator.apply(d_vars, fake)).mean()
    align, _ = plugin.extra_generator_loss(g_vars, d_vars, {"heatmaps": hj}, None, fake,
                                           jax.random.key(0))
    return adv + align, adv

  (total, adv), grads = jax.jit(jax.value_and_grad(g_loss, has_aux=True))(
      model.variables["g"]["params"])
  close(adv, out["loss_G_softplus_mean"], name="adv")
  np.testing.assert_allclose(total, out["loss_Gmain_total"], atol=1e-3)
  flat = traverse_util.flatten_dict(grads, sep="/")
  rules = eqgan.heatmap_rules(32) + ada.generator_rules(model.config.model)
  checked = 0
  for name in out:
    if not name.startswith("grad_G__"):
      continue
    torch_key = name[len("grad_G__"):].replace("__", ".")
    rule = next(r for r in rules if r.target and re.fullmatch(r.pattern, torch_key))
    ref = np.asarray(rule.transform(out[name]), np.float32)   # the weights' layout change
    close(flat[rule.target.removeprefix("params/")], ref, _small_tol, torch_key)
    checked += 1
  assert checked == 120   # every gradient the oracle stores


def test_alignment_loss_maths_equal_loss_py(cfg):
  """From the official GradCAM weights and D features (gc_weights_*, gc_feat_*), every later
  step of loss.py Gmain: CAM, align-corners upsampling, detached min-max, targets, the 0.25
  rule, per-level and total loss."""
  inputs, out = cfg
  h = official_heatmaps(inputs)
  levels = LEVELS
  weights = {r: jnp.asarray(nhwc(out[f"gc_weights_{k}"])) for k, r in levels.items()}
  feats = {r: jnp.asarray(nhwc(out[f"gc_feat_{k}"])) for k, r in levels.items()}
  cams = L.class_activation_maps(weights, feats)
  total = 0.0
  for k, r in levels.items():
    ref = out[f"gc_actmap_{k}"][:, 0]
    np.testing.assert_allclose(cams[r], ref, rtol=0, atol=1e-4 * np.abs(ref).max() + 5e-6)
    up = resize_aligned(cams[r][..., None], 32)[..., 0]
    np.testing.assert_allclose(up, out[f"gc_acts_up_{k}"][:, 0], rtol=0, atol=1e-5)
    norm = L.minmax_normalize(up)
    np.testing.assert_allclose(norm, out[f"gc_norm_{k}"][:, 0], rtol=0, atol=1e-4)
    target = L.heatmap_target(h, L.level_for(r, h), 32)
    np.testing.assert_allclose(target, out[f"gc_target_{k}"][:, 0], rtol=0, atol=1e-4)
    loss = L.thresholded_l1(jnp.abs(norm - target))
    np.testing.assert_allclose(loss, out[f"align_loss_{k}"], rtol=0, atol=1e-3)
    n_above = int(jnp.sum(jnp.abs(norm - target) > L.ALIGN_THRESHOLD))
    assert abs(n_above - int(out[f"align_n_above_{k}"])) <= 3, k
    total += float(loss)
  np.testing.assert_allclose(total, out["align_loss_total"], rtol=0, atol=1e-3)
  np.testing.assert_allclose(total, out["real_align_loss_total"], rtol=0, atol=1e-3)


def test_converter_names_missing_and_misshaped_keys(reference_dir):
  from jaxspatial.cli import UserError
  from jaxspatial.convert import safe_pickle
  data = safe_pickle.load_network_pickle(
      reference_dir / "eqgan_sa" / "cfgE" / "network-snapshot.pkl")
  assert formats.is_eqgan(data) and not ada.is_ada(data)
  modules = dict(data["G_ema"].named_modules())
  del modules["synthesis.b8.conv1.sel.mu"].state["_parameters"]["bias"]
  params = modules["synthesis.hm_conv0_b16"].state["_parameters"]
  params["weight"] = params["weight"][:, :1]
  with pytest.raises(UserError) as e:
    eqgan.convert(data)
  msg = str(e.value)
  assert msg.startswith("G_ema: ") and "\n" not in msg
  assert "missing: params/synthesis/heatmap_embed_1/conv0/weight" in msg
  assert "params/synthesis/sel_convs_1/mu/bias" in msg
  assert "shape mismatch: synthesis.hm_conv0_b16.weight (16, 1, 3, 3)" in msg


def test_attention_api_rejects_bad_input(cfg, model):
  from jaxspatial.cli import UserError
  inputs, _ = cfg
  with pytest.raises(UserError, match=r"x has shape .* expected \(n, 32, 32, 3\)"):
    model.gradcam(np.zeros((1, 16, 16, 3), np.float32))
  with pytest.raises(UserError, match="network must be"):
    model.alignment(inputs["z"], network="d")
