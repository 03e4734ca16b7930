"""Converted weights for the metric networks: PyTorch file -> ``$JAXSPATIAL_HOME/<net>.npz``.

No weights are ever downloaded or initialised at random: every metric network reads a file
that :func:`convert_net` wrote from the standard PyTorch checkpoint, and a missing file is a
:class:`~jaxspatial.errors.UserError` that names the file, its official source and the command
that converts it. The CLI is ``python -m jaxspatial.convert_torch --net NET [FILE]``.

* ``inception``: pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` -> ``inception.npz``
* ``vgg16``: torchvision's ``vgg16-397923af.pth`` -> ``vgg16.npz`` (features, fc1, fc2)
* ``alexnet``: torchvision's ``alexnet-owt-7be5be79.pth`` -> ``alexnet.npz`` (features)
* ``lpips-vgg`` / ``lpips-alex``: the LPIPS v0.1 heads ``vgg.pth`` / ``alex.pth``, or a full
  LPIPS state dict -> ``lpips-vgg.npz`` / ``lpips-alex.npz`` (``net`` backbone + ``lin0..4``)

A heads-only LPIPS file takes its backbone from the already converted ``vgg16.npz`` /
``alexnet.npz`` (as the lpips package takes it from torchvision's ImageNet weights); a full
``lpips.LPIPS().state_dict()`` carries its own backbone (``net.slice<S>.<i>.*``).

Layouts: conv OIHW -> HWIO, linear [out, in] -> [in, out]; VGG16's ``classifier.0`` is also
permuted from torchvision's NCHW flatten (``c*49 + h*7 + w``) to NHWC (``(h*7 + w)*512 + c``).
``*.num_batches_tracked`` keys are ignored whether present or not, as are heads nobody uses
(Inception's 1008-way ``fc``, VGG16's ``classifier.6``, AlexNet's classifier, LPIPS's
``scaling_layer`` buffers, which are fixed constants, and the ``lins.<k>`` aliases).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import pathlib
import re
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import numpy as np

from jaxspatial.errors import UserError
from jaxspatial.nets import inception, lpips_net, vgg

NETS = ("inception", "vgg16", "alexnet", "lpips-vgg", "lpips-alex")
_CONVERT = "python -m jaxspatial.convert_torch --net"


@dataclasses.dataclass(frozen=True)
class Source:
  """Where the official PyTorch file for a net comes from."""
  filename: str
  url: str
  what: str
  note: str = ""


_LPIPS_WEIGHTS = "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/"
SOURCES: dict[str, Source] = {
    "inception": Source(
        "pt_inception-2015-12-05-6726825d.pth",
        "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
        "pt_inception-2015-12-05-6726825d.pth",
        "pytorch-fid's FID InceptionV3 weights"),
    "vgg16": Source("vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth",
                    "torchvision's ImageNet VGG16 weights"),
    "alexnet": Source("alexnet-owt-7be5be79.pth",
                      "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                      "torchvision's ImageNet AlexNet weights"),
    "lpips-vgg": Source("vgg.pth", _LPIPS_WEIGHTS + "vgg.pth", "the LPIPS v0.1 VGG linear heads",
                        "also shipped in the lpips pip package as lpips/weights/v0.1/vgg.pth"),
    "lpips-alex": Source("alex.pth", _LPIPS_WEIGHTS + "alex.pth",
                         "the LPIPS v0.1 AlexNet linear heads",
                         "also shipped in the lpips pip package as lpips/weights/v0.1/alex.pth"),
}
_LPIPS_BACKBONE = {"lpips-vgg": "vgg16", "lpips-alex": "alexnet"}
# features index -> LPIPS slice number, for full LPIPS state dicts (``net.slice<S>.<i>.*``).
_LPIPS_SLICE = {
    "lpips-vgg": {i: s + 1 for s, stage in enumerate(vgg.VGG16_STAGES) for i, _ in stage},
    "lpips-alex": {c[0]: s + 1 for s, c in enumerate(vgg.ALEXNET_CONVS)},
}
_IGNORED = {
    "inception": re.compile(r"fc\.(weight|bias)"),
    "vgg16": re.compile(r"classifier\.6\.(weight|bias)"),
    "alexnet": re.compile(r"classifier\.[146]\.(weight|bias)"),
    "lpips-vgg": re.compile(r"scaling_layer\.(shift|scale)|lins\.[0-4]\.model\.1\.weight"),
    "lpips-alex": re.compile(r"scaling_layer\.(shift|scale)|lins\.[0-4]\.model\.1\.weight"),
}

Params = dict[str, Any]


def home() -> pathlib.Path:
  """``$JAXSPATIAL_HOME``, default ``~/.cache/jaxspatial``."""
  env = os.environ.get("JAXSPATIAL_HOME")
  return pathlib.Path(env).expanduser() if env else pathlib.Path.home() / ".cache" / "jaxspatial"


def converted_path(net: str, directory: str | pathlib.Path | None = None) -> pathlib.Path:
  """Path of the converted parameter file of ``net`` (``<home>/<net>.npz``)."""
  _check_net(net)
  return pathlib.Path(directory if directory is not None else home()) / f"{net}.npz"


def how_to_get(net: str) -> str:
  """One sentence: the official file, its URL, and the command that converts it."""
  src = SOURCES[net]
  note = f" ({src.note})" if src.note else ""
  text = (f"{src.what} come from {src.filename}, {src.url}{note}; convert with: "
          f"{_CONVERT} {net} {src.filename}")
  if net in _LPIPS_BACKBONE:
    bb = SOURCES[_LPIPS_BACKBONE[net]]
    text += (f", after converting the backbone ({bb.filename}, {bb.url}) with: "
             f"{_CONVERT} {_LPIPS_BACKBONE[net]} {bb.filename}")
  return text


# --------------------------------------------------------------------------- parameter specs


@dataclasses.dataclass(frozen=True)
class _Entry:
  """One parameter: its Flax path, PyTorch key and layout kind."""
  path: tuple[str, ...]
  key: str
  kind: str  # "conv" | "linear" | "linear_nchw" | "lin" | "vector"


def _torch_shape(kind: str, shape: tuple[int, ...]) -> tuple[int, ...]:
  """PyTorch shape of a parameter whose Flax shape is ``shape``."""
  if kind == "conv":
    h, w, i, o = shape
    return (o, i, h, w)
  if kind in ("linear", "linear_nchw"):
    return (shape[1], shape[0])
  if kind == "lin":
    return (1, shape[0], 1, 1)
  return shape


def _to_flax(kind: str, t: np.ndarray) -> np.ndarray:
  """PyTorch layout -> Flax layout (OIHW -> HWIO, [out,in] -> [in,out], NCHW flatten -> NHWC)."""
  if kind == "conv":
    return t.transpose(2, 3, 1, 0)
  if kind == "linear":
    return t.T
  if kind == "linear_nchw":  # VGG16 classifier.0: input c*49 + h*7 + w -> (h*7 + w)*512 + c
    out = t.shape[0]
    return t.reshape(out, 512, 7, 7).transpose(0, 2, 3, 1).reshape(out, -1).T
  if kind == "lin":
    return t.reshape(-1)
  return t


def _backbone_key(path: tuple[str, ...], prefix: str) -> tuple[str, str]:
  """("conv<i>", "kernel"|"bias") -> ("<prefix><i>.weight|bias", "conv"|"vector")."""
  index = int(path[0][len("conv"):])
  if path[1] == "kernel":
    return f"{prefix}{index}.weight", "conv"
  return f"{prefix}{index}.bias", "vector"


def _entry(net: str, path: tuple[str, ...]) -> _Entry:
  if net == "inception":
    *mods, leaf = path
    if leaf == "kernel":
      return _Entry(path, ".".join(mods[:-1]) + ".conv.weight", "conv")
    bn = {"scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}[leaf]
    return _Entry(path, ".".join(mods) + f".bn.{bn}", "vector")
  if net in ("vgg16", "alexnet"):
    if path[0] == "features":
      key, kind = _backbone_key(path[1:], "features.")
      return _Entry(path, key, kind)
    layer = {"fc1": "classifier.0", "fc2": "classifier.3"}[path[0]]
    if path[1] == "kernel":
      return _Entry(path, f"{layer}.weight", "linear_nchw" if path[0] == "fc1" else "linear")
    return _Entry(path, f"{layer}.bias", "vector")
  # lpips-*
  if path[0] == "net":
    index = int(path[1][len("conv"):])
    key, kind = _backbone_key(path[1:], f"net.slice{_LPIPS_SLICE[net][index]}.")
    return _Entry(path, key, kind)
  return _Entry(path, f"{path[0]}.model.1.weight", "lin")


def _module_and_input(net: str):
  if net == "inception":
    return inception.FIDInceptionV3(), (1, inception.INPUT_SIZE, inception.INPUT_SIZE, 3)
  if net == "vgg16":
    return vgg.VGG16(), (1, vgg.INPUT_SIZE, vgg.INPUT_SIZE, 3)
  if net == "alexnet":
    return _AlexNet(), (1, 64, 64, 3)
  return lpips_net.LPIPS(net.split("-")[1]), (1, 64, 64, 3)


class _AlexNet(flax.linen.Module):
  """Holds AlexNet's features under ``features`` (the alexnet.npz tree)."""

  @flax.linen.compact
  def __call__(self, x: jax.Array) -> list[jax.Array]:
    return vgg.AlexNetFeatures(name="features")(x)


@functools.cache
def expected_shapes(net: str) -> dict[tuple[str, ...], tuple[int, ...]]:
  """Flax path -> shape of every parameter of ``net``'s converted tree."""
  module, shape = _module_and_input(net)
  x = jax.ShapeDtypeStruct(shape, jnp.float32)
  args = (x, x) if net.startswith("lpips") else (x,)
  tree = jax.eval_shape(module.init, jax.random.key(0), *args)["params"]
  flat = flax.traverse_util.flatten_dict(tree)
  return {k: tuple(v.shape) for k, v in flat.items()}


def _check_net(net: str) -> None:
  if net not in NETS:
    raise UserError(f"unknown network {net!r}; expected one of {', '.join(NETS)}")


# --------------------------------------------------------------------------- conversion


def _read_torch(path: pathlib.Path) -> dict[str, np.ndarray]:
  try:
    import torch
  except ImportError:
    raise UserError(
        "reading PyTorch weights needs torch: pip install 'jaxspatial[torch]'") from None
  if not path.is_file():
    raise UserError(f"no such file: {path}")
  try:
    sd = torch.load(path, weights_only=True, map_location="cpu")
  except Exception as e:  # corrupt file, pickle with code, not a torch file at all
    raise UserError(
        f"cannot read {path} as a PyTorch state dict ({type(e).__name__}: {e})") from None
  if not isinstance(sd, dict) or not all(hasattr(v, "numpy") for v in sd.values()):
    raise UserError(f"{path} is not a PyTorch state dict (a dict of tensors)")
  return {k: v.detach().cpu().float().numpy() if v.is_floating_point() else v.numpy()
          for k, v in sd.items()}


def _convert_state_dict(net: str, sd: dict[str, np.ndarray], source: pathlib.Path,
                        only: Callable[[tuple[str, ...]], bool] = lambda p: True) -> dict:
  """Validates ``sd`` against ``net``'s spec (the paths where ``only`` holds) -> flat Flax
  dict."""
  entries = [_entry(net, p) for p in expected_shapes(net) if only(p)]
  wanted = {e.key for e in entries}
  ignored = _IGNORED[net]
  unexpected = sorted(k for k in sd if k not in wanted and not k.endswith("num_batches_tracked")
                      and not ignored.fullmatch(k))
  missing = sorted(wanted - set(sd))
  if unexpected or missing:
    parts = []
    if missing:
      parts.append(f"missing keys {_short(missing)}")
    if unexpected:
      parts.append(f"unexpected keys {_short(unexpected)}")
    raise UserError(f"{source} is not a {SOURCES[net].what} state dict: {'; '.join(parts)}")
  shapes = expected_shapes(net)
  out = {}
  for e in entries:
    want = _torch_shape(e.kind, shapes[e.path])
    got = tuple(sd[e.key].shape)
    if got != want:
      raise UserError(f"{source}: {e.key} has shape {got}, expected {want} for {net}")
    out[e.path] = np.ascontiguousarray(_to_flax(e.kind, sd[e.key]), dtype=np.float32)
  return out


def _short(keys: list[str], limit: int = 6) -> str:
  more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
  return ", ".join(keys[:limit]) + more


def _lpips_default_heads(net: str) -> pathlib.Path:
  """The heads file shipped inside the installed ``lpips`` package (found without importing it)."""
  spec = importlib.util.find_spec("lpips")
  name = SOURCES[net].filename
  if spec is not None and spec.submodule_search_locations:
    for loc in spec.submodule_search_locations:
      cand = pathlib.Path(loc) / "weights" / "v0.1" / name
      if cand.is_file():
        return cand
  raise UserError(f"no file given for {net} and the lpips package is not installed; "
                  f"{how_to_get(net)}")


def _save(flat: dict[tuple[str, ...], np.ndarray], out: pathlib.Path) -> None:
  out.parent.mkdir(parents=True, exist_ok=True)
  tmp = out.with_name(out.name + ".tmp")
  with open(tmp, "wb") as f:
    np.savez(f, **{"/".join(k): v for k, v in flat.items()})
  os.replace(tmp, out)


def convert_net(net: str, path: str | os.PathLike | None,
                out_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """Converts the standard PyTorch file of ``net`` and returns the written ``<out_dir>/<net>.npz``.

  ``net`` in {inception, vgg16, alexnet, lpips-vgg, lpips-alex}; ``out_dir`` defaults to
  ``$JAXSPATIAL_HOME``. For lpips-* ``path`` may be None (the heads shipped in the installed
  lpips package), a heads-only file (backbone from the converted vgg16/alexnet in ``out_dir``),
  or a full LPIPS state dict. Raises :class:`UserError` on a wrong or unreadable file. Prints
  nothing.
  """
  _check_net(net)
  out_dir = pathlib.Path(out_dir) if out_dir is not None else home()
  if path is None:
    if net not in _LPIPS_BACKBONE:
      raise UserError(f"--net {net} needs the PyTorch file: {how_to_get(net)}")
    path = _lpips_default_heads(net)
  path = pathlib.Path(path)
  sd = _read_torch(path)
  if net in _LPIPS_BACKBONE and not any(k.startswith("net.") for k in sd):
    flat = _convert_state_dict(net, sd, path, only=lambda p: p[0] != "net")
    backbone_net = _LPIPS_BACKBONE[net]
    backbone_file = converted_path(backbone_net, out_dir)
    if not backbone_file.is_file():
      raise UserError(f"{path} holds only the LPIPS heads; the backbone comes from the converted "
                      f"{backbone_net}, and {backbone_file} does not exist: "
                      f"{how_to_get(backbone_net)}")
    backbone = _read_npz(backbone_net, backbone_file, top="features")
    flat.update({("net",) + k[1:]: v for k, v in backbone.items()})
  else:
    flat = _convert_state_dict(net, sd, path)
  out = converted_path(net, out_dir)
  _save(flat, out)
  return out


# --------------------------------------------------------------------------- loading


def _read_npz(net: str, file: pathlib.Path,
              top: str | None = None) -> dict[tuple[str, ...], np.ndarray]:
  """Reads a converted file (only the subtree ``top`` if given) and checks it against the
  module's parameter shapes."""
  with np.load(file) as z:
    flat = {tuple(k.split("/")): z[k] for k in z.files if top is None or k.split("/")[0] == top}
  expected = {k: v for k, v in expected_shapes(net).items() if top is None or k[0] == top}
  got = {k: tuple(v.shape) for k, v in flat.items()}
  if got != expected:
    bad = sorted("/".join(k) for k in set(got) ^ set(expected)) or sorted(
        "/".join(k) for k in expected if got[k] != expected[k])
    raise UserError(f"{file} does not match the {net} network ({_short(bad)}); "
                    f"re-convert it: {how_to_get(net)}")
  return flat


@functools.lru_cache(maxsize=8)
def _load_cached(net: str, file: str, mtime_ns: int, size: int) -> Params:
  flat = _read_npz(net, pathlib.Path(file))
  return flax.traverse_util.unflatten_dict({k: jnp.asarray(v) for k, v in flat.items()})


def load_params(net: str) -> Params:
  """The converted parameter tree of ``net`` from ``$JAXSPATIAL_HOME`` (cached; jax arrays).

  Raises :class:`UserError` naming the missing file, its source and the convert command.
  """
  _check_net(net)
  file = converted_path(net)
  if not file.is_file():
    raise UserError(f"missing {file}: {how_to_get(net)}")
  st = file.stat()
  return _load_cached(net, str(file), st.st_mtime_ns, st.st_size)
