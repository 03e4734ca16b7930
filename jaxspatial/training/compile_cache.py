"""The persistent XLA compilation cache for training runs.

A training step at real widths takes tens of seconds to a minute to compile (docs/benchmarks.md);
with the cache on, a resumed, relaunched or repeated run loads the compiled programs instead.
``config.compile_cache_dir`` names the directory (``~`` expanded; "" turns it off). If jax's
cache was already configured (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``), that choice wins.
The cache is trusted code: point it only at a directory nobody else can write to.
"""

from __future__ import annotations

import os

import jax

DEFAULT_DIR = "~/.cache/jaxspatial/xla"
MIN_COMPILE_SECONDS = 1.0
"""Programs that compile faster than this are not worth a disk entry."""


def enable(directory: str, min_compile_seconds: float = MIN_COMPILE_SECONDS) -> str | None:
  """Points jax's persistent compilation cache at ``directory``; returns the directory in use
  (jax's own if it was already set, None when off). Call it before the first compile."""
  current = jax.config.jax_compilation_cache_dir
  if current:
    return current
  if not directory:
    return None
  path = os.path.abspath(os.path.expanduser(directory))
  jax.config.update("jax_compilation_cache_dir", path)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_seconds))
  return path
