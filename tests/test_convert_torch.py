"""convert_torch: error paths give one-line errors and exit 2; bare generator dicts work."""

import argparse
import collections
import subprocess
import sys

import numpy as np
import pytest

from helpers import Opaque
from jaxspatial.cli import UserError
from rosinality_recipe import state_dicts

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def small(reference_dir):
  g, d, _ = state_dicts(reference_dir / "stylegan2_rosinality" / "cfgA_small")
  return ({k: torch.from_numpy(v) for k, v in g.items()},
          {k: torch.from_numpy(v) for k, v in d.items()})


def convert(*args):
  return subprocess.run([sys.executable, "-m", "jaxspatial.convert_torch", *map(str, args)],
                        capture_output=True, text=True)


def assert_one_line_error(out, *fragments):
  assert out.returncode == 2, out.stderr
  lines = out.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
  for f in fragments:
    assert f in lines[0], lines[0]


def test_missing_file(tmp_path):
  assert_one_line_error(convert(tmp_path / "nope.pt", "--out", tmp_path / "o"), "no such file")


def test_truncated_file(tmp_path, small):
  g, d = small
  torch.save({"g_ema": g, "d": d}, tmp_path / "full.pt")
  data = (tmp_path / "full.pt").read_bytes()
  (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
  assert_one_line_error(convert(tmp_path / "cut.pt", "--out", tmp_path / "o"), "truncated")


def test_not_a_stylegan2(tmp_path):
  torch.save({"model": {"fc.weight": torch.zeros(2, 2)}}, tmp_path / "other.pt")
  assert_one_line_error(convert(tmp_path / "other.pt", "--out", tmp_path / "o"),
                        "not a checkpoint of a known format", "rosinality", "'model'")


def test_shape_mismatch_names_the_key(tmp_path, small):
  g, d = small
  bad = dict(d)
  bad["final_linear.1.weight"] = torch.zeros(1, 7)
  torch.save({"g_ema": g, "d": bad}, tmp_path / "bad.pt")
  assert_one_line_error(convert(tmp_path / "bad.pt", "--out", tmp_path / "o"),
                        "shape mismatch", "final_linear.1.weight")


def test_unexpected_and_missing_keys_are_named(tmp_path, small):
  g, _ = small
  bad = dict(g)
  bad["extra.weight"] = torch.zeros(3)
  del bad["conv1.noise.weight"]
  torch.save({"g_ema": bad}, tmp_path / "bad.pt")
  assert_one_line_error(convert(tmp_path / "bad.pt", "--out", tmp_path / "o"),
                        "unexpected keys: extra.weight", "missing: params/synthesis/conv1/noise")


def test_wrong_fir_kernel_is_reported(tmp_path, small):
  g, _ = small
  bad = dict(g)
  bad["convs.0.conv.blur.kernel"] = torch.ones(4, 4)
  torch.save({"g_ema": bad}, tmp_path / "bad.pt")
  assert_one_line_error(convert(tmp_path / "bad.pt", "--out", tmp_path / "o"), "FIR")


def test_untrusted_pickle_needs_flag(tmp_path, small):
  g, _ = small
  torch.save({"g_ema": g, "args": Opaque()}, tmp_path / "pickled.pt")
  assert_one_line_error(convert(tmp_path / "pickled.pt", "--out", tmp_path / "o"),
                        "--trust-pickle")
  # With the flag the file loads; unpickling then imports tests/helpers.py (Opaque's module).
  out = subprocess.run(
      [sys.executable, "-c",
       "import sys; sys.path.insert(0, %r); from jaxspatial import convert_torch as c; "
       "c.cli.run(lambda: c.main(sys.argv[1:]))" % str(__file__.rsplit("/", 1)[0]),
       str(tmp_path / "pickled.pt"), "--out", str(tmp_path / "o"), "--trust-pickle",
       "--w-avg-samples", "64"], capture_output=True, text=True)
  assert out.returncode == 0, out.stderr
  assert "computed from 64" in out.stdout


def test_bare_generator_state_dict_with_latent_avg(tmp_path, small):
  import jaxspatial as js
  g, _ = small
  torch.save(collections.OrderedDict(g), tmp_path / "bare.pt")
  out = convert(tmp_path / "bare.pt", "--out", tmp_path / "bare", "--w-avg-samples", "64")
  assert out.returncode == 0, out.stderr
  m = js.load(tmp_path / "bare")
  assert m.discriminator is None and m.resolution == 8
  with pytest.raises(UserError, match="no discriminator"):
    m.discriminate(np.zeros((1, 8, 8, 3), np.float32))
  latent = torch.arange(32, dtype=torch.float32)
  torch.save({"g_ema": g, "latent_avg": latent, "args": argparse.Namespace(size=8)},
             tmp_path / "avg.pt")
  assert convert(tmp_path / "avg.pt", "--out", tmp_path / "avg").returncode == 0
  np.testing.assert_array_equal(js.load(tmp_path / "avg").w_avg, latent.numpy())
  again = convert(tmp_path / "avg.pt", "--out", tmp_path / "avg")
  assert_one_line_error(again, "--overwrite")
