"""Parity with rosinality/stylegan2-pytorch: rebuild the reference state dicts by the
recipe, torch.save them in the rosinality checkpoint layout, convert with the CLI, load
with js.load, and match every stored output of the real PyTorch code.

Tolerance: |out - ref| <= 1e-4 * max(1, max|ref|), ~50x the reference's own float32 noise
floor (shared/reference/stylegan2_rosinality/README.md).
"""

import argparse
import subprocess
import sys

import numpy as np
import pytest

import jaxspatial as js
from parity import assert_close
from rosinality_recipe import state_dicts, to_nhwc

torch = pytest.importorskip("torch")
CONFIGS = ["cfgA_small", "cfgA"]


def _save_rosinality(path, g, d, ctor):
  t = lambda sd: {k: torch.from_numpy(v) for k, v in sd.items()}
  args = argparse.Namespace(size=ctor["size"], latent=ctor["style_dim"], n_mlp=ctor["n_mlp"],
                            channel_multiplier=ctor["channel_multiplier"])
  adam = torch.optim.Adam([torch.nn.Parameter(torch.zeros(2))]).state_dict()
  torch.save({"g": t(g), "g_ema": t(g), "d": t(d), "g_optim": adam, "d_optim": adam,
              "args": args, "ada_aug_p": 0.0}, path)


@pytest.fixture(scope="module", params=CONFIGS)
def converted(request, reference_dir, tmp_path_factory):
  cfg_dir = reference_dir / "stylegan2_rosinality" / request.param
  g, d, ctor = state_dicts(cfg_dir)
  tmp = tmp_path_factory.mktemp(request.param)
  _save_rosinality(tmp / "ckpt.pt", g, d, ctor)
  out = subprocess.run([sys.executable, "-m", "jaxspatial.convert_torch", str(tmp / "ckpt.pt"),
                        "--out", str(tmp / "model"), "--w-avg-samples", "256"],
                       capture_output=True, text=True)
  assert out.returncode == 0, out.stderr
  assert "converted: g_ema" in out.stdout
  model = js.load(tmp / "model")
  return model, np.load(cfg_dir / "inputs.npz"), np.load(cfg_dir / "outputs.npz"), ctor


def test_mapping(converted):
  m, inp, out, _ = converted
  assert_close("w", m.mapping(inp["z"]), out["w"])
  assert_close("mean_latent", m.mapping(inp["z_mean"]).mean(0), out["mean_latent"][0])


def test_images_with_noise_buffers(converted):
  m, inp, out, _ = converted
  assert_close("img_noise_buffers", m.generate(inp["z"], noise="const"),
               to_nhwc(out["img_noise_buffers"]))


def test_truncation(converted):
  m, inp, out, _ = converted
  g_vars = {**m.g_vars, "buffers": {**m.g_vars["buffers"], "w_avg": out["mean_latent"][0]}}
  toward_mean = js.GeneratorModel(m.config, {"g_ema": g_vars})
  assert_close("img_trunc07", toward_mean.generate(inp["z"], truncation=0.7),
               to_nhwc(out["img_trunc07"]))


def test_style_mixing_and_wplus(converted):
  m, inp, out, _ = converted
  w1, w2 = m.mapping(inp["z"]), m.mapping(inp["z_mix2"])
  ws = np.concatenate([np.repeat(w1[:, None], 3, 1), np.repeat(w2[:, None], m.num_ws - 3, 1)], 1)
  assert_close("latent_mix_inject3", ws, out["latent_mix_inject3"])
  assert_close("img_mix_inject3", m.synthesize(ws), to_nhwc(out["img_mix_inject3"]))
  assert_close("img_wplus", m.synthesize(inp["w_plus"]), to_nhwc(out["img_wplus"]))


def test_explicit_per_sample_noise(converted):
  from jaxspatial.models import stylegan2 as sg2
  m, inp, out, _ = converted
  noise = [to_nhwc(inp[f"explicit_noise_{i}"]) for i in range(sg2.num_noises(m.resolution))]
  img = m.generator.apply(m.g_vars, inp["z"], noise=noise)
  assert_close("img_explicit_noise", img, to_nhwc(out["img_explicit_noise"]))


@pytest.mark.parametrize("name,images,n", [("d_logits", "d_images", 4),
                                           ("d_logits_b2", "d_images", 2),
                                           ("d_logits_b8", "d_images_b8", 8),
                                           ("d_logits_on_img_noise_buffers", "d_images_b8", 4)])
def test_discriminator(converted, name, images, n):
  m, inp, out, _ = converted
  assert_close(name, m.discriminate(to_nhwc(inp[images][:n])), out[name][:, 0])


def test_intermediate_features(converted):
  """Per-block synthesis features (DragGAN's hook) equal rosinality's StyledConv outputs."""
  m, inp, out, _ = converted
  _, feats = m.generator.apply(m.g_vars, inp["z"], return_features=True)
  assert_close("conv1", feats[0], to_nhwc(out["gint_conv1"]))
  assert_close("convs_1", feats[1], to_nhwc(out["gint_convs_1"]))


def test_discriminator_features_and_zero_taps(converted):
  """D block features match rosinality's ResBlock outputs; zero taps change nothing."""
  m, inp, out, _ = converted
  x = to_nhwc(inp["d_images"])
  logits, feats = m.discriminator.apply(m.d_vars, x, return_features=True)
  final_in = to_nhwc(out["dint_final_conv_in"])      # last block output ++ mbstd channel
  assert_close("4px block", feats[4], final_in[..., :-1])
  taps = {r: np.zeros_like(f) for r, f in feats.items()}
  assert_close("tapped", m.discriminator.apply(m.d_vars, x, taps=taps), logits)
