"""Where the repository and the shared reference oracles are (``$JAXSPATIAL_SHARED``, else
``../shared`` beside the checkout): one module that conftest and the test files whose
parametrisation reads the oracles at collection time both import. A name of its own: with
pytest-xdist, ``import conftest`` can resolve to tests/studio/conftest.py."""

import os
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]


def _find_shared() -> pathlib.Path:
  env = os.environ.get("JAXSPATIAL_SHARED")
  for cand in ([pathlib.Path(env)] if env else []) + [REPO.parent / "shared", REPO / "shared"]:
    if (cand / "reference").is_dir():
      return cand
  return REPO.parent / "shared"


SHARED = _find_shared()
REFERENCE = SHARED / "reference"
