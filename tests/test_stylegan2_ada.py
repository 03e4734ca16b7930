"""Parity with NVlabs/stylegan2-ada-pytorch: convert the official network pickles of
shared/reference/stylegan2_ada (cfgC: unconditional, conv_clamp 256; cfgD: conditional,
fp16-flagged blocks) with the CLI, open them with js.load, and match every stored output of
the official code: ws, images under every noise/truncation mode, W+ with the clamp-driving
x300 input, G vs G_ema, per-block features, D logits at every batch size and D features.

Tolerance: |out - ref| <= 1e-4 * max(1, max|ref|), 20-60x the reference's own float32
noise floor (shared/reference/stylegan2_ada/README.md).
"""

import contextlib
import io

import jax
import numpy as np
import pytest

import jaxspatial as js
from jaxspatial import cli, convert_torch, generate
from jaxspatial.cli import UserError
from parity import assert_close
from rosinality_recipe import to_nhwc

CONFIGS = ("cfgC", "cfgD")


class Ref:
  def __init__(self, cfg_dir, model, stdout):
    self.m, self.stdout = model, stdout
    self.inp, self.out = np.load(cfg_dir / "inputs.npz"), np.load(cfg_dir / "outputs.npz")
    self.conditional = "c" in self.inp
    self.c = self.inp["c"] if self.conditional else None
    self.c8 = self.inp["c8"] if self.conditional else None

  def labels(self, k):
    return None if self.c8 is None else self.c8[:k]


@pytest.fixture(scope="module", params=CONFIGS)
def ref(request, reference_dir, tmp_path_factory):
  """The official pickle converted by the ``convert_torch`` command (its ``main``, in this
  process: a subprocess per config would add a jax start-up each), opened with js.load."""
  cfg_dir = reference_dir / "stylegan2_ada" / request.param
  out_dir = tmp_path_factory.mktemp(request.param) / "model"
  with contextlib.redirect_stdout(io.StringIO()) as stdout:
    convert_torch.main([str(cfg_dir / "network-snapshot.pkl"), "--out", str(out_dir)])
  return Ref(cfg_dir, js.load(out_dir), stdout.getvalue())


def test_summary(ref):
  expected = {
      False: ["format: stylegan2-ada", "32x32: z 32, w 32, c 0, mapping 2 layers, num_ws 8",
              "channels min(1024 // res, 64) (64@4 64@8 64@16 32@32)", "conv_clamp 256",
              "mbstd group 4 x 1", "G_ema -> g_ema, G -> g, D -> d", "ignored (float32 weights,"
              " float32 compute): none"],
      True: ["16x16: z 24, w 40, c 3, mapping 3 layers, num_ws 6",
             "channels min(512 // res, 48) (48@4 48@8 32@16)", "conv_clamp None",
             "G b8,b16; D b16,b8"],
  }[ref.conditional]
  for fragment in expected:
    assert fragment in ref.stdout, (fragment, ref.stdout)
  assert ref.m.c_dim == (3 if ref.conditional else 0)


def test_ws_and_truncation(ref):
  m, inp, out = ref.m, ref.inp, ref.out
  w = m.mapping(inp["z"], labels=ref.c)
  ws = np.repeat(w[:, None], m.num_ws, axis=1)
  assert_close("w_avg", m.w_avg, out["w_avg"])
  assert_close("ws_psi1", ws, out["ws_psi1"])
  assert_close("ws_psi07", m.truncate(ws, 0.7), out["ws_psi07"])
  assert_close("ws_psi05_cut4", m.truncate(ws, 0.5, truncation_cutoff=4), out["ws_psi05_cut4"])


@pytest.mark.parametrize("name,kw", [
    ("img_const_psi1", {}),
    ("img_const_psi07", {"truncation": 0.7}),
    ("img_const_psi05_cut4", {"truncation": 0.5, "truncation_cutoff": 4}),
    ("img_none_psi1", {"noise": "none"})])
def test_images(ref, name, kw):
  got = ref.m.generate(ref.inp["z"], labels=ref.c, **kw)
  assert_close(name, got, to_nhwc(ref.out[name]))


def test_explicit_wplus_and_the_clamp(ref):
  m, inp, out = ref.m, ref.inp, ref.out
  assert_close("img_wplus_const", m.synthesize(inp["ws_rand"]), to_nhwc(out["img_wplus_const"]))
  big = m.synthesize(300 * inp["ws_rand"])
  assert_close("img_wplus_x300_const", big, to_nhwc(out["img_wplus_x300_const"]))
  clamp = m.config.model.conv_clamp
  if clamp is not None:   # each ToRGB output is clamped; the skip sum can exceed it
    assert np.abs(big).max() > clamp


def test_g_is_not_g_ema(ref):
  m, inp, out = ref.m, ref.inp, ref.out
  g = js.GeneratorModel(m.config, {"g_ema": m.variables["g"]})
  assert_close("G_ws_psi1", np.repeat(g.mapping(inp["z"], labels=ref.c)[:, None], m.num_ws, 1),
               out["G_ws_psi1"])
  g_img = g.generate(inp["z"], labels=ref.c)
  assert_close("G_img_const_psi1", g_img, to_nhwc(out["G_img_const_psi1"]))
  assert np.abs(g_img - m.generate(inp["z"], labels=ref.c)).max() > 1.0


def test_per_block_features(ref):
  m, inp, out = ref.m, ref.inp, ref.out
  c = None if ref.c is None else ref.c[:1]
  img, feats = jax.jit(lambda v, z, c: m.generator.apply(v, z, labels=c, return_features=True))(
      m.g_vars, inp["z"][:1], c)
  for i, x in enumerate(feats):
    assert_close(f"gblk_b{4 * 2 ** i}_x", x, to_nhwc(out[f"gblk_b{4 * 2 ** i}_x"]))
  assert_close("final img", img, to_nhwc(out[f"gblk_b{m.resolution}_img"]))


@pytest.mark.parametrize("name,images,k", [
    ("d_gen_b1", "d_gen_images", 1), ("d_gen_b2", "d_gen_images", 2),
    ("d_gen_b4", "d_gen_images", 4), ("d_gen_b8", "d_gen_images", 8),
    ("d_noise_b2", "d_noise_images", 2), ("d_noise_b8", "d_noise_images", 8),
    ("d_big_b4", "d_big_images", 4)])
def test_discriminator(ref, name, images, k):
  got = ref.m.discriminate(to_nhwc(ref.inp[images][:k]), labels=ref.labels(k))
  assert_close(name, got, ref.out[name][:, 0])


def test_discriminator_features(ref):
  m, inp, out = ref.m, ref.inp, ref.out
  _, feats = jax.jit(lambda v, x, c: m.discriminator.apply(v, x, labels=c,
                                                           return_features=True))(
      m.d_vars, to_nhwc(inp["d_gen_images"][:4]), ref.labels(4))
  for res in (2 ** k for k in range(3, m.resolution.bit_length())):
    assert_close(f"dint_b{res}_x", feats[res // 2], to_nhwc(out[f"dint_b{res}_x"]))


def test_labels(ref):
  m, z = ref.m, ref.inp["z"]
  if not ref.conditional:
    with pytest.raises(UserError, match="unconditional"):
      m.generate(z, labels=np.zeros((4, 3), np.float32))
    return
  classes = np.argmax(ref.c, axis=1)
  np.testing.assert_array_equal(m.generate(z, labels=classes), m.generate(z, labels=ref.c))
  ws = ref.inp["ws_rand"]
  np.testing.assert_array_equal(m.synthesize(ws, labels=classes), m.synthesize(ws))
  with pytest.raises(UserError, match="labels has shape"):
    m.synthesize(ws, labels=ref.c[:2])
  with pytest.raises(UserError, match="conditional"):
    m.generate(z)
  with pytest.raises(UserError, match="labels"):
    m.generate(z, labels=np.zeros((4, 5), np.float32))
  with pytest.raises(UserError, match="class"):
    m.generate(z, labels=np.array([0, 1, 2, 3]))


def test_generate_command_class_and_cutoff(ref, tmp_path, capsys):
  argv = ["--checkpoint", str(ref.m.path), "--seeds", "0-1", "--truncation", "0.5",
          "--truncation-cutoff", "2", "--save-npy", str(tmp_path / "x.npy")]
  z = np.concatenate([ref.m.sample_z(s, 1) for s in (0, 1)])
  if not ref.conditional:
    with pytest.raises(SystemExit):
      cli.run(lambda: generate.main(argv + ["--class", "1"]))
    assert "unconditional" in capsys.readouterr().err
    return
  with pytest.raises(SystemExit):
    cli.run(lambda: generate.main(argv))
  assert "give --class K (0..2)" in capsys.readouterr().err
  generate.main(argv + ["--class", "1"])
  np.testing.assert_array_equal(
      np.load(tmp_path / "x.npy"),
      ref.m.generate(z, truncation=0.5, truncation_cutoff=2, labels=np.array([1, 1])))


def test_channel_rule_inference():
  from jaxspatial.convert import ada
  widths = {4: 64, 8: 64, 16: 64, 32: 32}
  assert ada.infer_channels(widths, None) == (1024, 64)
  assert ada.infer_channels(widths, 1040) == (1040, 64)      # the pickle's own value, if it fits
  assert ada.infer_channels(widths, 4096) == (1024, 64)      # ... and not if it does not
  assert ada.infer_channels({4: 512, 8: 512}, 32768) == (32768, 512)
  with pytest.raises(UserError, match="do not follow"):
    ada.infer_channels({4: 64, 8: 48, 16: 64}, None)


def test_unsupported_architectures_are_named(reference_dir):
  import copy
  from jaxspatial.convert import ada, safe_pickle
  data = safe_pickle.load_network_pickle(reference_dir / "stylegan2_ada" / "cfgC" /
                                         "network-snapshot.pkl")
  g, d = copy.deepcopy(data["G_ema"]), copy.deepcopy(data["D"])
  dict(g.named_modules())["synthesis.b16"].state["architecture"] = "resnet"
  with pytest.raises(UserError, match="G architecture .*only 'skip'"):
    ada.model_config(g, data["D"])
  dict(d.named_modules())["b4.mbstd"].state["group_size"] = None
  with pytest.raises(UserError, match="whole batch"):
    ada.model_config(data["G_ema"], d)
