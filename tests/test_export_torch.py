"""export_torch --format rosinality: the file holds exactly the state dicts rosinality's
Generator / Discriminator register (keys, order, shapes of the reference manifest), and the
round trip .pt -> jaxspatial -> .pt -> jaxspatial is bit-exact."""

import argparse
import contextlib
import io
import json
import sys

import jax
import ml_collections
import numpy as np
import pytest

from jaxspatial import cli, convert_torch, export_torch
from jaxspatial import checkpoint
from jaxspatial import models as models_lib
from rosinality_recipe import state_dicts

torch = pytest.importorskip("torch")


def run(main, argv, capsys):
  with pytest.raises(SystemExit) as e:
    cli.run(lambda: (main(argv), sys.exit(0)))
  out = capsys.readouterr()
  return e.value.code, out.out, out.err


@pytest.fixture(scope="module")
def round_trip(reference_dir, tmp_path_factory):
  """cfgA_small by the recipe -> rosinality .pt -> jaxspatial -> .pt -> jaxspatial, each step by
  its command's ``main`` (in this process: no extra jax start-ups)."""
  cfg_dir = reference_dir / "stylegan2_rosinality" / "cfgA_small"
  g, d, ctor = state_dicts(cfg_dir)
  tmp = tmp_path_factory.mktemp("export")
  t = lambda sd: {k: torch.from_numpy(v) for k, v in sd.items()}  # noqa: E731
  torch.save({"g": t(g), "g_ema": t(g), "d": t(d),
              "args": argparse.Namespace(channel_multiplier=ctor["channel_multiplier"])},
             tmp / "orig.pt")
  convert_torch.main([str(tmp / "orig.pt"), "--out", str(tmp / "js1"), "--w-avg-samples", "64"])
  with contextlib.redirect_stdout(io.StringIO()) as stdout:
    cli.run(lambda: export_torch.main([str(tmp / "js1"), "--format", "rosinality", "--out",
                                       str(tmp / "back.pt")]))
  convert_torch.main([str(tmp / "back.pt"), "--out", str(tmp / "js2")])
  return g, d, ctor, tmp, stdout.getvalue()


def test_state_dicts_are_rosinalitys(reference_dir, round_trip):
  g, d, ctor, tmp, stdout = round_trip
  manifest = json.loads(
      (reference_dir / "stylegan2_rosinality" / "cfgA_small" / "manifest.json").read_text())
  back = torch.load(tmp / "back.pt", weights_only=True)
  assert sorted(back) == ["d", "g", "g_ema", "latent_avg"]
  for name, net in (("g_ema", "generator"), ("g", "generator"), ("d", "discriminator")):
    assert [[k, list(v.shape)] for k, v in back[name].items()] == manifest[net]["keys"]
  for name, original in (("g_ema", g), ("g", g), ("d", d)):   # .pt -> js -> .pt: bit-exact
    for k, v in original.items():
      np.testing.assert_array_equal(back[name][k].numpy(), v, err_msg=f"{name}.{k}")
  assert back["latent_avg"].shape == (ctor["style_dim"],)
  assert (f"Generator(size={ctor['size']}, style_dim={ctor['style_dim']}, n_mlp={ctor['n_mlp']}"
          f", channel_multiplier={ctor['channel_multiplier']})") in stdout


def test_second_conversion_is_bit_exact(round_trip):
  *_, tmp, _ = round_trip
  first, second = checkpoint.restore_models(tmp / "js1"), checkpoint.restore_models(tmp / "js2")
  flat = lambda tree: {jax.tree_util.keystr(p): np.asarray(v)   # noqa: E731
                       for p, v in jax.tree_util.tree_leaves_with_path(tree)}
  a, b = flat(first), flat(second)
  assert sorted(a) == sorted(b)
  for k in a:
    np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_architectures_rosinality_cannot_hold_are_refused(tmp_path, capsys):
  cfg = models_lib.stylegan2_model_config(8, z_dim=16, w_dim=16, n_mlp=1, channel_base=64,
                                          channel_max=16, c_dim=2)
  checkpoint.save_model_dir(tmp_path / "ada", {"g_ema": {"params": {}}},
                            ml_collections.ConfigDict({"model": cfg}))
  code, _, err = run(export_torch.main, [str(tmp_path / "ada"), "--out",
                                         str(tmp_path / "x.pt")], capsys)
  assert code == 2 and err.count("\n") == 1 and err.startswith("error: ")
  assert "min(64 // res, 16)" in err and "labels" in err
  assert not (tmp_path / "x.pt").exists()


def test_command_errors(round_trip, tmp_path, capsys):
  *_, tmp, _ = round_trip
  code, _, err = run(export_torch.main, [str(tmp_path / "nope"), "--out",
                                         str(tmp_path / "x.pt")], capsys)
  assert code == 2 and "does not exist" in err and err.count("\n") == 1
  code, _, err = run(export_torch.main, [str(tmp / "js1"), "--out", str(tmp / "back.pt")],
                     capsys)
  assert code == 2 and "--overwrite" in err
