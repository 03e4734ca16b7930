"""Shared command-line plumbing: one-line user errors, progress bars, seed ranges.

Every ``python -m jaxspatial.<command>`` calls :func:`run` around its ``main``. A
:class:`UserError` (bad path, wrong format, incompatible config) is printed as a single
``error: ...`` line on stderr with exit status 2; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
from typing import Callable, Iterable, TypeVar

T = TypeVar("T")


class UserError(Exception):
  """A mistake in the user's input, reported as one line without a traceback."""


class ArgumentParser(argparse.ArgumentParser):
  """``argparse.ArgumentParser`` whose usage errors (a missing or unparsable flag) are
  UserErrors, so they print as one ``error: ...`` line like every other bad input."""

  def error(self, message: str):
    raise UserError(f"{message} (see {self.prog} --help)")

  @classmethod
  def for_command(cls, command: str, doc: str, **kw) -> "ArgumentParser":
    """The parser of ``python -m jaxspatial.<command>``: the first paragraph of the command's
    docstring ``doc`` is the description, the rest (its examples) the epilog, kept as written."""
    description, _, epilog = doc.strip().partition("\n\n")
    return cls(prog=f"python -m jaxspatial.{command}", description=description,
               epilog=epilog or None, formatter_class=argparse.RawDescriptionHelpFormatter, **kw)

  def add_checkpoint(self, help: str) -> None:
    """``--checkpoint DIR`` (required) and ``--step N``."""
    self.add_argument("--checkpoint", required=True, help=help)
    self.add_argument("--step", type=int, help="checkpoint step (default: latest)")

  def add_edit_source(self, checkpoint_help: str, seed_help: str, latent_note: str) -> None:
    """The image an edit command starts from: ``--checkpoint``/``--step``, and ``--seed`` or a
    projection's ``--latent latent.npz`` (``latent_note``: what the projection supplies)."""
    self.add_checkpoint(checkpoint_help)
    self.add_argument("--seed", type=int, default=0, help=f"{seed_help} (default 0)")
    self.add_argument("--latent", metavar="NPZ",
                      help="edit a projected image instead: latent.npz from python -m "
                           f"jaxspatial.project ({latent_note})")


def run(main: Callable[[], object]) -> None:
  """Runs a command's ``main`` and turns :class:`UserError` into ``error: ...`` + exit 2."""
  try:
    main()
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)


def existing_file(path: str | os.PathLike, expected: str = "a file") -> pathlib.Path:
  """``path`` as a Path; UserError naming it when it is missing or a directory."""
  path = pathlib.Path(path)
  if path.is_dir():
    raise UserError(f"{path} is a directory; expected {expected}")
  if not path.is_file():
    raise UserError(f"{path}: no such file")
  return path


def is_interactive() -> bool:
  """True when stderr is a terminal (progress bars are drawn only then)."""
  return sys.stderr.isatty() and os.environ.get("JAXSPATIAL_NO_PROGRESS") is None


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None,
             desc: str | None = None, unit: str = "it", enabled: bool = True, **kw):
  """A tqdm bar on stderr, drawn only on a terminal (and only where ``enabled``)."""
  from tqdm.auto import tqdm
  return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr,
              disable=not (enabled and is_interactive()), dynamic_ncols=True, **kw)


def parse_int_ranges(text: str) -> list[int]:
  """Parses ``"0-3,7,10-11"`` into ``[0, 1, 2, 3, 7, 10, 11]``."""
  out: list[int] = []
  for part in text.split(","):
    part = part.strip()
    if not part:
      continue
    try:
      if "-" in part:
        lo, hi = part.split("-", 1)
        lo_i, hi_i = int(lo), int(hi)
        if hi_i < lo_i:
          raise UserError(f"empty range {part!r} (end before start)")
        out.extend(range(lo_i, hi_i + 1))
      else:
        out.append(int(part))
    except ValueError:
      raise UserError(f"cannot read {text!r} as integers like '0-15' or '1,4,9'") from None
  if not out:
    raise UserError(f"no integers in {text!r}")
  return out


def parse_row_col(text: str, cast: Callable[[str], T] = float, example: str = "12,20"
                  ) -> tuple[T, T]:
  """``"ROW,COL"`` (a pixel or a block) as a pair of ``cast``; UserError otherwise."""
  try:
    row, col = (cast(v) for v in text.split(","))
  except ValueError:
    raise UserError(f"cannot read {text!r}; write it as ROW,COL like {example}") from None
  return row, col


def add_finetune_args(parser) -> None:
  """``--finetune N``, ``--finetune-lpips W`` and ``--seed`` for the regressor commands that
  end in :func:`finetune_and_inpaint`."""
  from jaxspatial.api.regressor import FINETUNE_LR, FINETUNE_STEPS
  parser.add_argument("--seed", type=int, default=0,
                      help="seed for finetuning masks / random noise")
  parser.add_argument("--finetune", type=int, default=0, metavar="STEPS",
                      help="first finetune the regressor on this input for STEPS Adam steps "
                           f"(lr {FINETUNE_LR}, fresh masks each step; the paper uses "
                           f"{FINETUNE_STEPS}); 0 = off")
  parser.add_argument("--finetune-lpips", type=float, default=1.0, metavar="W",
                      help="LPIPS weight of the finetuning loss (needs the converted lpips-vgg "
                           "weights; 0 = pixel MSE only)")


def finetune_and_inpaint(model, x, mask, args: argparse.Namespace):
  """The regressor commands' result ``G(E(x, mask))``, after ``--finetune`` steps of adapting
  ``model`` (a :class:`~jaxspatial.api.regressor.RegressorModel`) to this input when asked."""
  if args.finetune:
    model = model.finetune(x, mask, steps=args.finetune, seed=args.seed,
                           lpips_weight=args.finetune_lpips)
  return model.inpaint(x, mask, seed=args.seed)
