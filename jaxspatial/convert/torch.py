"""Reading PyTorch files safely: ``torch.load`` with ``weights_only=True`` and tensors as numpy.

torch is an optional dependency (``pip install 'jaxspatial[torch]'``); it is imported only
when a file is read.
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np

from jaxspatial.errors import UserError, existing_file


# A torch.save file is a zip archive (torch >= 1.6) or a pickle (protocol 2+ starts with 0x80).
_TORCH_MAGIC = (b"PK\x03\x04", b"\x80")


def read_torch_file(path: str | pathlib.Path, trust_pickle: bool = False):
  """``torch.load`` on CPU with ``weights_only=True`` (only ``argparse.Namespace`` allowed).

  ``trust_pickle`` allows arbitrary pickled objects: only for files you trust. A file that is
  not a zip archive or a pickle is refused before unpickling, so the advice to trust a file
  is only given for a real pickle that holds other objects.
  """
  path = existing_file(path, "a .pt/.pth file")
  try:
    with open(path, "rb") as f:
      head = f.read(4)
  except OSError as e:
    raise UserError(f"{path}: cannot read ({e.strerror})") from None
  if not head:
    raise UserError(f"{path} is empty (0 bytes)")
  if not head.startswith(_TORCH_MAGIC):
    raise UserError(f"{path} is not a PyTorch file (neither a zip archive nor a pickle)")
  try:
    import torch
  except ImportError:
    raise UserError("reading .pt files needs torch: pip install 'jaxspatial[torch]'") from None
  try:
    if trust_pickle:
      return torch.load(path, map_location="cpu", weights_only=False)
    with torch.serialization.safe_globals([argparse.Namespace]):
      return torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # noqa: BLE001 -- unpicklers of damaged files raise anything
    if not trust_pickle and "Unsupported global" in str(e):
      raise UserError(
          f"{path} contains pickled objects beyond tensors and argparse.Namespace; if you "
          "trust the file, re-run with --trust-pickle") from None
    raise UserError(f"{path}: not a readable PyTorch file, truncated or corrupt "
                    f"({type(e).__name__}: {first_line(e)})") from None


def first_line(e: Exception) -> str:
  return (str(e).strip().splitlines() or [type(e).__name__])[0][:200]


def numpy_state_dict(sd, what: str) -> dict[str, np.ndarray]:
  if not isinstance(sd, dict):
    raise UserError(f"{what} is a {type(sd).__name__}, not a state dict")
  out = {}
  for k, v in sd.items():
    if not hasattr(v, "detach"):
      raise UserError(f"{what}[{k!r}] is a {type(v).__name__}, not a tensor")
    out[k] = v.detach().cpu().float().numpy()
  return out
