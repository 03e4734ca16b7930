"""Reading PyTorch files safely: ``torch.load`` with ``weights_only=True`` and tensors as numpy.

torch is an optional dependency (``pip install 'jaxspatial[torch]'``); it is imported only
when a file is read.
"""

from __future__ import annotations

import argparse
import pathlib
import pickle
import zipfile

import numpy as np

from jaxspatial.cli import UserError


def read_torch_file(path: str | pathlib.Path, trust_pickle: bool = False):
  """``torch.load`` on CPU with ``weights_only=True`` (only ``argparse.Namespace`` allowed).

  ``trust_pickle`` allows arbitrary pickled objects: only for files you trust.
  """
  path = pathlib.Path(path)
  if not path.is_file():
    raise UserError(f"{path}: no such file")
  try:
    import torch
  except ImportError:
    raise UserError("reading .pt files needs torch: pip install 'jaxspatial[torch]'") from None
  try:
    if trust_pickle:
      return torch.load(path, map_location="cpu", weights_only=False)
    with torch.serialization.safe_globals([argparse.Namespace]):
      return torch.load(path, map_location="cpu", weights_only=True)
  except pickle.UnpicklingError as e:
    if "weights_only" in str(e) or "Unsupported global" in str(e):
      raise UserError(
          f"{path} contains pickled objects beyond tensors and argparse.Namespace; if you "
          "trust the file, re-run with --trust-pickle") from None
    raise UserError(f"{path}: not a readable PyTorch file ({first_line(e)})") from None
  except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
    raise UserError(f"{path}: not a readable PyTorch file, truncated or corrupt "
                        f"({first_line(e)})") from None


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
