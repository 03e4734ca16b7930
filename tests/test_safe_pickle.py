"""The restricted network-pickle reader: every tensor of the official cfgC / cfgD snapshots
bit-exact (sha256 of checksums.json), every hostile file refused or read as its README says
without its marker file appearing, and the allow-listed globals hardened against misuse."""

import hashlib
import json
import os
import pathlib
import pickle
import pickletools
import sys

import numpy as np
import pytest

from jaxspatial.cli import UserError
from jaxspatial.convert import safe_pickle

ADA = "stylegan2_ada"


@pytest.fixture(scope="module")
def snapshots(reference_dir):
  return {cfg: safe_pickle.load_network_pickle(reference_dir / ADA / cfg / "network-snapshot.pkl")
          for cfg in ("cfgC", "cfgD")}


@pytest.mark.parametrize("cfg", ["cfgC", "cfgD"])
@pytest.mark.parametrize("net", ["G", "D", "G_ema"])
def test_every_tensor_matches_its_checksum(reference_dir, snapshots, cfg, net):
  checksums = json.loads((reference_dir / ADA / cfg / "checksums.json").read_text())[net]
  manifest = json.loads((reference_dir / ADA / cfg / "manifest.json").read_text())
  sd = snapshots[cfg][net].state_dict()
  assert list(sd) == [k for k, *_ in manifest["state_dict"][net]]   # torch's order
  for entry in checksums:
    v = sd[entry["key"]]
    assert v.dtype == np.float32 and list(v.shape) == entry["shape"], entry["key"]
    assert hashlib.sha256(v.tobytes()).hexdigest() == entry["sha256"], entry["key"]


@pytest.mark.parametrize("cfg", ["cfgC", "cfgD"])
def test_architecture_records(reference_dir, snapshots, cfg):
  manifest = json.loads((reference_dir / ADA / cfg / "manifest.json").read_text())
  data = snapshots[cfg]
  for net in ("G", "D", "G_ema"):
    modules = dict(data[net].named_modules())
    for entry in manifest["persistent_modules"][net]:
      rec = modules[entry["path"]]
      assert rec.class_name == entry["class_name"] and rec.module is None
      assert rec.init_kwargs == entry["init_kwargs"], entry["path"]
  assert data["augment_pipe"] is None
  assert data["G"].source_sha256 == data["D"].source_sha256 is not None
  conv0 = dict(data["G_ema"].named_modules())["synthesis.b8.conv0"].state
  assert type(conv0["act_gain"]) is np.float64 and conv0["act_gain"] == np.sqrt(2)


HOSTILE = {
    "a1_reduce_os_system.pkl": ["posix.system"],
    "a2_reduce_builtins_exec.pkl": ["builtins.exec"],
    "a3_reduce_subprocess_call.pkl": ["subprocess.call"],
    "c_truncated.pkl": ["truncated or corrupt"],
    "d_unrelated_dict.pkl": ["not a stylegan2-ada network pickle", "epoch, model"],
    "e_storage_payload.pkl": ["posix.system", "inside a tensor storage"],
}


def _marker(reference_dir, name):
  markers = json.loads((reference_dir / ADA / "hostile" / "markers.json").read_text())
  marker = markers["files"][name]["marker"]
  return pathlib.Path(marker) if marker else None


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_files_are_refused(reference_dir, name):
  marker = _marker(reference_dir, name)
  if marker is not None and marker.exists():
    os.remove(marker)
  with pytest.raises(UserError) as e:
    safe_pickle.load_network_pickle(reference_dir / ADA / "hostile" / name)
  message = str(e.value)
  assert "\n" not in message
  for fragment in HOSTILE[name]:
    assert fragment in message
  assert marker is None or not marker.exists()


def test_module_src_is_never_executed(reference_dir, snapshots):
  """b_module_src_exec.pkl: cfgC's weights under a poisoned module_src: read, not run."""
  name = "b_module_src_exec.pkl"
  marker = _marker(reference_dir, name)
  if marker.exists():
    os.remove(marker)
  data = safe_pickle.load_network_pickle(reference_dir / ADA / "hostile" / name)
  assert not marker.exists()
  for net in ("G", "D", "G_ema"):
    got, want = data[net].state_dict(), snapshots["cfgC"][net].state_dict()
    assert list(got) == list(want)
    for k in want:
      np.testing.assert_array_equal(got[k], want[k], err_msg=k)
  assert data["G"].source_sha256 != snapshots["cfgC"]["G"].source_sha256


# ----------------------------------------------------- hand-written pickles of allowed globals


def _frag(obj) -> bytes:
  """Protocol-3 opcodes that push ``obj`` (without PROTO / STOP)."""
  return pickle.dumps(obj, protocol=3)[2:-1]


def _glob(module: str, name: str) -> bytes:
  return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


@pytest.fixture(scope="module")
def storage_bytes(reference_dir):
  """The first tensor storage of cfgD (a legacy torch.save stream), and its float32 values."""
  data = (reference_dir / ADA / "cfgD" / "network-snapshot.pkl").read_bytes()
  raw = next(arg for op, arg, _ in pickletools.genops(data) if op.name.endswith("BINBYTES"))
  first = safe_pickle.load_network_pickle(reference_dir / ADA / "cfgD" / "network-snapshot.pkl")
  values = next(iter(first["G"].state_dict().values())).reshape(-1)
  return raw, values


def _tensor_pickle(raw: bytes, offset: int, size: tuple, stride: tuple) -> bytes:
  return (b"\x80\x03" + _glob("torch._utils", "_rebuild_tensor_v2") + b"(" +
          _glob("torch.storage", "_load_from_bytes") + _frag(raw) + b"\x85R" +
          _frag(offset) + _frag(size) + _frag(stride) + _frag(False) + _frag({}) + b"tR.")


def test_tensor_views_honour_offset_and_stride(tmp_path, storage_bytes):
  raw, values = storage_bytes
  path = tmp_path / "view.pkl"
  path.write_bytes(_tensor_pickle(raw, 3, (2, 3), (1, 5)))
  np.testing.assert_array_equal(safe_pickle.load_pickle(path),
                                values[3 + np.arange(2)[:, None] + 5 * np.arange(3)[None]])


def test_tensor_past_its_storage_is_refused(tmp_path, storage_bytes):
  raw, values = storage_bytes
  path = tmp_path / "oob.pkl"
  path.write_bytes(_tensor_pickle(raw, 0, (2, values.size), (values.size, 1)))
  with pytest.raises(UserError, match="past the end of its storage"):
    safe_pickle.load_pickle(path)


@pytest.mark.parametrize("numpy_module", ["numpy.core.multiarray", "numpy._core.multiarray"])
def test_numpy_scalars_in_both_spellings(tmp_path, numpy_module):
  blob = pickle.dumps(np.float64(1.25), protocol=3).replace(
      b"numpy._core.multiarray", numpy_module.encode())
  (tmp_path / "s.pkl").write_bytes(blob)
  value = safe_pickle.load_pickle(tmp_path / "s.pkl")
  assert type(value) is np.float64 and value == 1.25


def test_object_dtype_scalars_are_refused(tmp_path):
  blob = (b"\x80\x03" + _glob("numpy._core.multiarray", "scalar") + _glob("numpy", "dtype") +
          _frag(("O8", False, True)) + b"R" + _frag(b"\0" * 8) + b"\x86R.")
  (tmp_path / "o.pkl").write_bytes(blob)
  with pytest.raises(UserError, match="not numeric"):
    safe_pickle.load_pickle(tmp_path / "o.pkl")


def test_torch_containers_become_records(tmp_path):
  """EqGAN-SA's SEL holds plain torch.nn modules: they pickle by class, not persistence."""
  torch = pytest.importorskip("torch")
  net = torch.nn.Sequential(torch.nn.InstanceNorm2d(3, affine=True), torch.nn.LeakyReLU(0.2))
  with torch.no_grad():
    net[0].weight.normal_()
  (tmp_path / "seq.pkl").write_bytes(pickle.dumps({"G_ema": net}))
  rec = safe_pickle.load_network_pickle(tmp_path / "seq.pkl")["G_ema"]
  assert (rec.module, rec.class_name) == ("torch.nn.modules.container", "Sequential")
  assert rec.children["1"].state["negative_slope"] == 0.2
  want = net.state_dict()
  got = rec.state_dict()
  assert list(got) == list(want)
  for k in want:
    np.testing.assert_array_equal(got[k], want[k].numpy())
  (tmp_path / "conv.pkl").write_bytes(pickle.dumps({"G_ema": torch.nn.Conv2d(1, 1, 1)}))
  with pytest.raises(UserError, match="torch.nn.modules.conv.Conv2d"):
    safe_pickle.load_network_pickle(tmp_path / "conv.pkl")


def test_tensorflow_pickles_get_a_conversion_hint(tmp_path):
  (tmp_path / "tf.pkl").write_bytes(b"\x80\x03" + _glob("dnnlib.tflib.network", "Network") + b").")
  with pytest.raises(UserError, match="legacy.py"):
    safe_pickle.load_pickle(tmp_path / "tf.pkl")


def test_missing_file(tmp_path):
  with pytest.raises(UserError, match="no such file"):
    safe_pickle.load_network_pickle(tmp_path / "nope.pkl")


@pytest.mark.parametrize("name", sorted(HOSTILE) + ["b_module_src_exec.pkl"])
def test_convert_command_on_hostile_files(reference_dir, tmp_path, capsys, name):
  """The CLI: one ``error:`` line and exit 2 for each refused file (nothing written), and
  b converted without its marker appearing."""
  from jaxspatial import cli, convert_torch
  marker = _marker(reference_dir, name)
  if marker is not None and marker.exists():
    os.remove(marker)
  argv = [str(reference_dir / ADA / "hostile" / name), "--out", str(tmp_path / "out")]
  with pytest.raises(SystemExit) as e:
    cli.run(lambda: (convert_torch.main(argv), sys.exit(0)))
  err = capsys.readouterr().err
  if name in HOSTILE:
    assert e.value.code == 2 and err.count("\n") == 1 and err.startswith("error: "), err
    assert HOSTILE[name][0] in err
    assert not (tmp_path / "out").exists()
  else:
    assert e.value.code == 0, err
  assert marker is None or not marker.exists()
