"""The error every layer raises for a mistake in the user's input, and the file check that
raises it. A leaf: it imports nothing from the package, so any layer may import it.

``python -m jaxspatial.<command>`` prints a :class:`UserError` as one ``error: ...`` line and
exits with status 2 (:func:`jaxspatial.cli.run`); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import pathlib


class UserError(Exception):
  """A mistake in the user's input, reported as one line without a traceback."""


def existing_file(path: str | os.PathLike, expected: str = "a file") -> pathlib.Path:
  """``path`` as a Path; UserError naming it when it is missing or a directory."""
  path = pathlib.Path(path)
  if path.is_dir():
    raise UserError(f"{path} is a directory; expected {expected}")
  if not path.is_file():
    raise UserError(f"{path}: no such file")
  return path
