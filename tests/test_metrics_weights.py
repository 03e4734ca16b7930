"""Weight conversion and loading: clear errors, never a silent random network."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from jaxspatial import metrics
from jaxspatial.cli import UserError
from jaxspatial.nets import weights

torch = pytest.importorskip("torch")


@pytest.fixture
def home(tmp_path, monkeypatch):
  monkeypatch.setenv("JAXSPATIAL_HOME", str(tmp_path / "home"))
  return tmp_path / "home"


def _zeros_state_dict(reference_dir, folder: str, with_tracked: bool = True) -> dict:
  man = json.loads((reference_dir / "perceptual" / folder / "manifest.json").read_text())
  return {k: torch.zeros(()).expand(*shape) if dtype == "float32"
          else torch.zeros((), dtype=torch.int64)
          for k, shape, dtype in man["keys"]
          if with_tracked or not k.endswith("num_batches_tracked")}


def _alexnet_state_dict() -> dict:
  """torchvision alexnet key set with stride-0 (free) tensors of the right shapes."""
  shapes = {"features.0": (64, 3, 11, 11), "features.3": (192, 64, 5, 5),
            "features.6": (384, 192, 3, 3), "features.8": (256, 384, 3, 3),
            "features.10": (256, 256, 3, 3), "classifier.1": (4096, 9216),
            "classifier.4": (4096, 4096), "classifier.6": (1000, 4096)}
  sd = {}
  for name, shape in shapes.items():
    sd[f"{name}.weight"] = torch.ones(()).expand(*shape)
    sd[f"{name}.bias"] = torch.zeros(()).expand(shape[0])
  return sd


@pytest.mark.parametrize("net", weights.NETS)
def test_missing_weights_name_file_source_and_command(home, net):
  with pytest.raises(UserError) as e:
    weights.load_params(net)
  msg = str(e.value)
  src = weights.SOURCES[net]
  assert str(home / f"{net}.npz") in msg
  assert src.filename in msg and src.url in msg
  assert f"python -m jaxspatial.convert_torch --net {net} {src.filename}" in msg
  assert "\n" not in msg


def test_public_functions_refuse_to_run_without_weights(home):
  x = np.zeros((1, 32, 32, 3), np.float32)
  with pytest.raises(UserError, match="pt_inception-2015-12-05-6726825d.pth"):
    metrics.inception_features(x)
  with pytest.raises(UserError, match="vgg16-397923af.pth"):
    metrics.vgg16_features(x)
  with pytest.raises(UserError, match="lpips-alex.npz"):
    metrics.lpips(x, x, "alex")
  with pytest.raises(UserError, match="lpips-vgg.npz"):
    metrics.lpips_module("vgg")


@pytest.mark.parametrize("with_tracked", [True, False])
def test_inception_num_batches_tracked_optional(reference_dir, tmp_path, with_tracked):
  sd = _zeros_state_dict(reference_dir, "inception_fid", with_tracked)
  assert any(k.endswith("num_batches_tracked") for k in sd) == with_tracked
  torch.save(sd, tmp_path / "inc.pth")
  out = weights.convert_net("inception", tmp_path / "inc.pth", tmp_path)
  assert out == tmp_path / "inception.npz"
  with np.load(out) as z:
    assert len(z.files) == 94 * 5 and "Mixed_7c/branch_pool/conv/kernel" in z.files
    assert z["Mixed_7c/branch_pool/conv/kernel"].shape == (1, 1, 2048, 192)


def test_convert_names_unexpected_and_missing_keys(tmp_path):
  sd = _alexnet_state_dict()
  del sd["features.10.bias"]
  sd["features.11.weight"] = torch.zeros(3)
  torch.save(sd, tmp_path / "a.pth")
  with pytest.raises(UserError) as e:
    weights.convert_net("alexnet", tmp_path / "a.pth", tmp_path)
  assert "missing keys features.10.bias" in str(e.value)
  assert "unexpected keys features.11.weight" in str(e.value)
  assert not (tmp_path / "alexnet.npz").exists()


def test_convert_rejects_wrong_shapes(tmp_path):
  sd = _alexnet_state_dict()
  sd["features.3.weight"] = torch.zeros(192, 64, 3, 3)
  torch.save(sd, tmp_path / "a.pth")
  with pytest.raises(UserError, match=r"features\.3\.weight has shape \(192, 64, 3, 3\), "
                                      r"expected \(192, 64, 5, 5\)"):
    weights.convert_net("alexnet", tmp_path / "a.pth", tmp_path)


def test_convert_rejects_unreadable_files(tmp_path):
  (tmp_path / "junk.pth").write_bytes(b"not a torch file")
  with pytest.raises(UserError, match="cannot read"):
    weights.convert_net("vgg16", tmp_path / "junk.pth", tmp_path)
  torch.save([torch.zeros(1)], tmp_path / "list.pth")
  with pytest.raises(UserError, match="not a PyTorch state dict"):
    weights.convert_net("vgg16", tmp_path / "list.pth", tmp_path)
  with pytest.raises(UserError, match="no such file"):
    weights.convert_net("vgg16", tmp_path / "absent.pth", tmp_path)
  with pytest.raises(UserError, match="unknown network"):
    weights.convert_net("resnet", tmp_path / "junk.pth", tmp_path)
  with pytest.raises(UserError, match="needs the PyTorch file"):
    weights.convert_net("inception", None, tmp_path)


def test_convert_without_torch_says_how_to_install(tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, "torch", None)   # makes `import torch` raise ImportError
  with pytest.raises(UserError, match=r"pip install 'jaxspatial\[torch\]'"):
    weights.convert_net("alexnet", tmp_path / "a.pth", tmp_path)


def _heads(net: str) -> dict:
  channels = {"vgg": (64, 128, 256, 512, 512), "alex": (64, 192, 384, 256, 256)}[net]
  return {f"lin{i}.model.1.weight": torch.full((1, c, 1, 1), 0.1 * (i + 1))
          for i, c in enumerate(channels)}


def test_lpips_heads_only_needs_the_converted_backbone(tmp_path):
  torch.save(_heads("alex"), tmp_path / "alex.pth")
  with pytest.raises(UserError) as e:
    weights.convert_net("lpips-alex", tmp_path / "alex.pth", tmp_path)
  assert "alexnet.npz" in str(e.value) and "--net alexnet alexnet-owt-7be5be79.pth" in str(e.value)


def test_lpips_heads_from_the_installed_lpips_package(tmp_path, monkeypatch, home):
  package = tmp_path / "site" / "lpips"
  (package / "weights" / "v0.1").mkdir(parents=True)
  (package / "__init__.py").write_text("raise ImportError('must not be imported')\n")
  torch.save(_heads("alex"), package / "weights" / "v0.1" / "alex.pth")
  torch.save(_alexnet_state_dict(), tmp_path / "alexnet.pth")
  weights.convert_net("alexnet", tmp_path / "alexnet.pth")
  monkeypatch.syspath_prepend(str(tmp_path / "site"))
  out = weights.convert_net("lpips-alex", None)
  assert out == home / "lpips-alex.npz"
  params = weights.load_params("lpips-alex")
  np.testing.assert_allclose(np.asarray(params["lin2"]), 0.3, rtol=1e-6)
  np.testing.assert_array_equal(np.asarray(params["net"]["conv10"]["kernel"]), 1.0)


def test_lpips_without_file_or_package(tmp_path, monkeypatch):
  monkeypatch.setattr(weights.importlib.util, "find_spec", lambda name: None)
  with pytest.raises(UserError, match="lpips package is not installed.*alex.pth"):
    weights.convert_net("lpips-alex", None, tmp_path)


def test_stale_converted_file_is_refused(home):
  home.mkdir(parents=True)
  np.savez(home / "alexnet.npz", **{"features/conv0/kernel": np.zeros((11, 11, 3, 64), np.float32)})
  with pytest.raises(UserError, match="does not match the alexnet network.*re-convert"):
    weights.load_params("alexnet")
