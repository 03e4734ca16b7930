"""Test-session set-up: 8 simulated CPU devices, XLA's optimisation passes off and its faster
fusion emitter (tests/xla_env.py), a persistent compilation cache, paths to the shared
reference oracles, and the order in which pytest-xdist hands out test files (README: ``-n 2``).

The XLA flags must be set before jax initialises its backends, which is why they are set here
and not in a fixture.
"""

import os
import pathlib

from shared_paths import REFERENCE
from xla_env import xla_flags

os.environ.setdefault("XLA_FLAGS", xla_flags(8))
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAXSPATIAL_NO_PROGRESS", "1")
# The suite compiles many tiny programs and runs each a few times: without XLA's optimisation
# passes a cold run took 12 min instead of 17 on the 2-core CI machine, every test green.
# JAX_DISABLE_MOST_OPTIMIZATIONS=0 in the environment turns them back on.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")

import jax  # noqa: E402
import pytest  # noqa: E402

_CACHE = pathlib.Path(os.environ.get("JAXSPATIAL_TEST_CACHE",
                                     pathlib.Path.home() / ".cache" / "jaxspatial-test-xla"))
jax.config.update("jax_compilation_cache_dir", str(_CACHE))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
# Commands the tests start as subprocesses (train, convert_torch, ...) share the cache, so a
# resumed or relaunched run does not compile its step again.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_CACHE))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")



@pytest.fixture(scope="session")
def reference_dir() -> pathlib.Path:
  if not REFERENCE.is_dir():
    pytest.fail(f"reference oracles not found at {REFERENCE} (set JAXSPATIAL_SHARED)")
  return REFERENCE


# ------------------------------------------------------------------ pytest-xdist scheduling
# The README runs the suite on two workers (``-n 2``), each taking whole test files so that a
# module-scoped fixture (a compiled trainer, a converted network) is built once. Two rules:
# the studio's files share session fixtures (models, server, browser) and go to one worker
# together; files with ``slow`` tests are handed out first, so that the run does not end with
# one worker on a multi-minute file while the other waits.


def _scope(nodeid: str) -> str:
  path = nodeid.split("::", 1)[0]
  return "tests/studio" if path.startswith("tests/studio/") else path


def pytest_collection_modifyitems(config, items):
  slow = {_scope(item.nodeid) for item in items if item.get_closest_marker("slow")}
  items.sort(key=lambda item: _scope(item.nodeid) not in slow)     # stable: files stay whole


@pytest.hookimpl(optionalhook=True)      # pytest without xdist: not called
def pytest_xdist_make_scheduler(config, log):
  from xdist.scheduler import LoadScopeScheduling

  class WholeFiles(LoadScopeScheduling):
    def _split_scope(self, nodeid: str) -> str:
      return _scope(nodeid)

  config.option.loadscopereorder = False       # keep the collection's slow-first order
  return WholeFiles(config, log)
