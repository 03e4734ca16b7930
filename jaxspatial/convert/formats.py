"""The checkpoint formats ``convert_torch`` reads, and how a file's format is recognised.

A file is first classified by its container: ``torch`` (a ``torch.save`` file, zip or
legacy, read by ``torch.load(weights_only=True)``) or ``pickle`` (a network pickle, read by
:mod:`convert.safe_pickle`, never executing anything). The loaded object then goes to the
first :class:`Format` of that container whose ``detect`` accepts it, so more specific formats
come first. A format names its functions as ``"module:function"`` and is imported only when
it is tried.

Adding a format: write ``jaxspatial/convert/<name>.py`` with ``detect(obj) -> bool`` and
``convert(obj, **options) -> (models, config, summary_lines)``, then add one entry here.
"""

from __future__ import annotations

import dataclasses
import importlib
import pathlib
import zipfile
from typing import Any, Callable

from jaxspatial.errors import UserError

TORCH, PICKLE = "torch", "pickle"
_LEGACY_TORCH_MAGIC = 0x1950A86A20F9469CFC6C


@dataclasses.dataclass(frozen=True)
class Format:
  name: str
  container: str
  description: str
  detect: str          # "module:function", (loaded object) -> bool
  convert: str         # "module:function", (loaded object, **options) -> (models, config, summary)

  def function(self, which: str) -> Callable:
    module, fn = getattr(self, which).split(":")
    try:
      return getattr(importlib.import_module(module), fn)
    except ModuleNotFoundError as e:
      raise UserError(f"this installation cannot convert {self.name} files ({e})") from None


FORMATS = (
    Format("latent-composition", TORCH,
           "chail/latent-composition encoder .pth ({'state_dict': ResNet [, optimizer, ...]}, "
           "e.g. sgan_encoders_church_RGBM_model_final.pth): with --generator GDIR, a "
           "regressor directory",
           "jaxspatial.convert.latent_composition:looks_like_encoder",
           "jaxspatial.convert.latent_composition:convert_encoder"),
    Format("rosinality", TORCH,
           "rosinality/stylegan2-pytorch .pt: a dict with g_ema [, g, d, latent_avg] as "
           "train.py / convert_weight.py write it, or a bare generator state dict",
           "jaxspatial.convert.rosinality:is_rosinality",
           "jaxspatial.convert.rosinality:convert_stylegan2"),
    Format("eqgan-sa", PICKLE,
           "EqGAN-SA network pickle (.pkl; a stylegan2-ada snapshot whose G has use_sel)",
           "jaxspatial.convert.formats:is_eqgan", "jaxspatial.convert.eqgan:convert"),
    Format("stylegan2-ada", PICKLE,
           "stylegan2-ada-pytorch network pickle (.pkl: G_ema [, G, D]): NVIDIA's NGC "
           "StyleGAN2 models, DragGAN's, your own training snapshots; conditional or not",
           "jaxspatial.convert.ada:is_ada", "jaxspatial.convert.ada:convert"),
)


def is_eqgan(data: Any) -> bool:
  """An EqGAN-SA snapshot: its generator records ``use_sel`` among its constructor kwargs."""
  from jaxspatial.convert.safe_pickle import Record
  g = data.get("G_ema") if isinstance(data, dict) else None
  return isinstance(g, Record) and "use_sel" in g.init_kwargs


def container_of(path: pathlib.Path) -> str:
  """``torch`` for ``torch.save`` files (zip, or legacy streams starting with torch's magic
  number), ``pickle`` for other pickles (protocol 2+, as torch and stylegan2-ada write them);
  UserError for anything else, before any unpickling."""
  try:
    with open(path, "rb") as f:
      head = f.read(14)
  except OSError as e:
    raise UserError(f"{path}: cannot read ({e.strerror})") from None
  if zipfile.is_zipfile(path):
    return TORCH
  if not head:
    raise UserError(f"{path} is empty (0 bytes)")
  if not head.startswith(b"\x80"):
    raise UserError(f"{path} is not a PyTorch file or network pickle (neither a zip archive "
                    "nor a pickle)")
  # PROTO 2, LONG1 of 10 bytes: the magic number a legacy torch.save stream starts with.
  legacy = (head[:4] == b"\x80\x02\x8a\x0a"
            and int.from_bytes(head[4:], "little") == _LEGACY_TORCH_MAGIC)
  return TORCH if legacy else PICKLE


def detect(obj: Any, container: str, path: pathlib.Path) -> Format:
  for fmt in FORMATS:
    if fmt.container == container and fmt.function("detect")(obj):
      return fmt
  names = ", ".join(f.name for f in FORMATS if f.container == container)
  found = (f"keys {sorted(map(str, obj))[:6]}" if isinstance(obj, dict)
           else f"a {type(obj).__name__}")
  raise UserError(f"{path}: not a checkpoint of a known format (tried {names}; found {found})")


def help_text() -> str:
  return "\n".join(f"  {f.name:14s} {f.description}" for f in FORMATS)
