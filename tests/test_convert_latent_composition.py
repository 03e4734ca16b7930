"""latent-composition RGBM encoder: the official ``.pth`` (rebuilt from cfgR's recipe in the
official checkpoint layout) -> ``convert_torch --generator`` -> ``r.invert`` equals the
official ``StyleganNets.encode`` W+ at 32 / 96 / 256 px, no mask and all hidden included."""

import contextlib
import hashlib
import io
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import jaxspatial as js
from jaxspatial import convert_torch
from jaxspatial import families
from jaxspatial import models as models_lib
from jaxspatial import checkpoint
from jaxspatial.cli import UserError
from jaxspatial.models import regressor as R

torch = pytest.importorskip("torch")

W_DIM = 512


def recipe_state_dict(manifest: dict) -> dict:
  """cfgR/recipe.md: key k gets ``default_rng(3000 + k)`` scaled per rule (numpy float32)."""
  sd = {}
  for k, (key, shape, _) in enumerate(manifest["keys"]):
    rng = np.random.default_rng(manifest["recipe_seed_base"] + k)
    if key.endswith("num_batches_tracked"):
      sd[key] = np.array(1000, np.int64)
      continue
    if key.endswith("running_var"):
      sd[key] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
      continue
    z = rng.standard_normal(shape).astype(np.float32)
    if len(shape) == 4:
      gain = 1.0 if key == "layer5.conv5.weight" else 2.0
      sd[key] = z * np.float32(np.sqrt(gain / np.prod(shape[1:])))
    elif key == "layer5.conv5.bias":
      sd[key] = z * np.float32(0.2)
    elif key.endswith(".bn2.weight"):
      sd[key] = np.float32(0.25) + z * np.float32(0.05)
    elif key.endswith(".weight"):
      sd[key] = np.float32(1.0) + z * np.float32(0.2)
    else:                                   # BN bias and running_mean
      sd[key] = z * np.float32(0.1)
  return sd


def save_official_checkpoint(sd: dict, path) -> None:
  """``make_checkpoint``'s layout: state_dict + a fresh Adam state, epoch, val_loss."""
  tensors = {k: torch.from_numpy(np.asarray(v)) for k, v in sd.items()}
  params = [torch.nn.Parameter(v) for k, v in tensors.items()
            if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))]
  adam = torch.optim.Adam(params, lr=1e-4, betas=(0.5, 0.999))
  torch.save({"state_dict": tensors, "optimizer": adam.state_dict(), "epoch": 0,
              "val_loss": 0.5}, path)


def nhwc(a):
  return np.asarray(a).transpose(0, 2, 3, 1)


def convert(*args) -> str:
  """``python -m jaxspatial.convert_torch ARGS`` in this process (its stdout)."""
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    convert_torch.main([str(a) for a in args])
  return out.getvalue()


def save_generator(path, resolution: int) -> None:
  """A tiny random StyleGAN2 with w_dim 512 (the encoder only needs its config and num_ws)."""
  g_cfg = models_lib.stylegan2_model_config(resolution, z_dim=8, w_dim=W_DIM, n_mlp=1,
                                            channel_base=64, channel_max=8)
  g = families.build_generator(g_cfg)
  g_vars = jax.jit(g.init)({"params": jax.random.key(0)}, jnp.zeros((1, 8)))
  checkpoint.save_model_dir(path, {"g_ema": g_vars}, ml_collections.ConfigDict({"model": g_cfg}))


@pytest.fixture(scope="module")
def cfg(reference_dir):
  """(manifest, inputs, outputs, checksums) of cfgR."""
  d = reference_dir / "latent_composition" / "cfgR"
  return (json.loads((d / "manifest.json").read_text()), np.load(d / "inputs.npz"),
          np.load(d / "outputs.npz"), json.loads((d / "checksums.json").read_text()))


@pytest.fixture(scope="module")
def files(cfg, tmp_path_factory):
  """{"pth": official-layout checkpoint, "g16": 16 px generator (num_ws 6), "g32": 32 px
  (num_ws 8), "reg": the converted regressor dir, "stdout": the conversion's summary}."""
  manifest = cfg[0]
  root = tmp_path_factory.mktemp("latent_composition")
  out = {"pth": root / "netE_epoch_0.pth", "g16": root / "g16", "g32": root / "g32",
         "reg": root / "reg"}
  save_official_checkpoint(recipe_state_dict(manifest), out["pth"])
  save_generator(out["g16"], 16)
  save_generator(out["g32"], 32)
  out["stdout"] = convert(out["pth"], "--generator", out["g16"], "--out", out["reg"])
  return out


@pytest.fixture(scope="module")
def reg(files):
  return js.load(files["reg"])


def _tol(ref):
  return 1e-4 * max(1.0, float(np.abs(ref).max()))     # README "recommended test tolerance"


def test_recipe_rebuilds_the_official_bytes(cfg):
  manifest, _, _, checksums = cfg
  sd = recipe_state_dict(manifest)
  for entry in checksums["state_dict"]:
    digest = hashlib.sha256(np.ascontiguousarray(sd[entry["key"]]).tobytes()).hexdigest()
    assert digest == entry["sha256"], entry["key"]


def test_conversion_summary_and_config(files, reg):
  assert "ResNet-34, width 64, RGB+mask input area-resized to 256, W+ 6 x 512" in files["stdout"]
  m = reg.config.model
  assert (m.kind, m.depth, m.width, m.input_size, m.use_mask, m.num_ws) == (
      "regressor", 34, 64, 256, True, 6)


def test_invert_equals_official_wplus(cfg, reg):
  _, inputs, outputs, _ = cfg
  # All 32 px cases in one call (one compile): masked, no mask (all ones), all hidden.
  x32 = nhwc(inputs["image_32"])
  m32 = nhwc(inputs["mask_32"])
  x = np.concatenate([x32 * m32, x32, np.zeros((1, 32, 32, 3), np.float32)])
  m = np.concatenate([m32, np.ones_like(m32), np.zeros((1, 32, 32, 1), np.float32)])
  got = reg.invert(x, m)
  for name, sl in (("wplus_32", slice(0, 4)), ("wplus_nomask_32", slice(4, 8)),
                   ("wplus_empty_32", slice(8, 9))):
    ref = outputs[name]
    np.testing.assert_allclose(got[sl], ref, rtol=0, atol=_tol(ref), err_msg=name)
  np.testing.assert_allclose(reg.invert(x32), outputs["wplus_nomask_32"], rtol=0,
                             atol=_tol(outputs["wplus_nomask_32"]))   # mask=None = all known
  for size in (96, 256):
    img, mask = nhwc(inputs[f"image_{size}"]), nhwc(inputs[f"mask_{size}"])
    ref = outputs[f"wplus_{size}"]
    np.testing.assert_allclose(reg.invert(img * mask, mask), ref, rtol=0, atol=_tol(ref),
                               err_msg=f"wplus_{size}")


def test_area_resize_is_the_official_one_at_96px(cfg):
  _, inputs, outputs, _ = cfg
  got = R.area_resize(jnp.asarray(nhwc(inputs["net_input_96"][:1])), 256)
  ref = nhwc(outputs["int96_downsample"])
  np.testing.assert_allclose(np.asarray(got), ref, rtol=0, atol=_tol(ref))


def test_inpaint_and_composite_are_the_generator_of_the_encoding(reg):
  """inpaint is G(E(x ⊙ m, m)) and composite the inpainting of the pasted collage (paper
  Eq. 4), both rebuilt here from invert (E, checked against the official encoder above) and
  synthesize (G) and a collage pasted by hand."""
  x = np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 3)).astype(np.float32)
  m = np.zeros((2, 16, 16, 1), np.float32)
  m[:, :8] = 1
  want = reg.synthesize(reg.invert(x * m, m))
  np.testing.assert_allclose(reg.inpaint(x, m), want, rtol=0, atol=_tol(want))
  y = reg.composite([(x, m), (x[::-1], 1 - m)])       # the second part covers the rest
  collage = x * m + x[::-1] * (1 - m)
  want = reg.synthesize(reg.invert(collage, np.ones_like(m)))
  np.testing.assert_allclose(y, want, rtol=0, atol=_tol(want))
  assert np.abs(y - reg.inpaint(x, m)).max() > 10 * _tol(want)   # the pasted part matters


def test_num_ws_mismatch_and_missing_generator_are_user_errors(files, tmp_path):
  with pytest.raises(UserError, match=r"6 W\+ latents .* num_ws=8"):
    convert(files["pth"], "--generator", files["g32"], "--out", tmp_path / "o")
  with pytest.raises(UserError, match="--generator GDIR"):
    convert(files["pth"], "--out", tmp_path / "o")
  torch.save({"g_ema": {"style.1.weight": torch.zeros(2, 2)}}, tmp_path / "other.pt")
  with pytest.raises(UserError, match="rosinality file"):
    convert(tmp_path / "other.pt", "--generator", files["g16"], "--out", tmp_path / "o")
  assert not (tmp_path / "o").exists()


def test_bad_encoder_keys_are_named_in_one_error(cfg, reg):
  from jaxspatial.convert import latent_composition
  sd = recipe_state_dict(cfg[0])
  del sd["layer3.2.bn1.running_var"]
  sd["layer5.conv5.bias"] = sd["layer5.conv5.bias"][:10]
  sd["fc.weight"] = np.zeros((2, 512), np.float32)
  with pytest.raises(UserError) as e:
    latent_composition.encoder_variables(sd, reg.config.model)
  msg = str(e.value)
  assert msg.startswith("latent-composition encoder: ") and "\n" not in msg
  for part in ("unexpected keys: fc.weight", "batch_stats/layer3_2/bn1/var",
               "shape mismatch: layer5.conv5.bias (10,)"):
    assert part in msg, part
