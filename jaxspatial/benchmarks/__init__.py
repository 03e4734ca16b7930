"""Benchmarks: functions that time one piece of the package and return table rows.

``python -m jaxspatial.bench NAME`` runs them (:mod:`jaxspatial.bench` lists the names). One
module per layer or family: :mod:`.layers` (fast ops vs their references), :mod:`.stylegan2`
(generator, train step, FLOPs), :mod:`.ssn`, :mod:`.spatialgan`, :mod:`.regressor`,
:mod:`.data` (shapes rendering and the input pipeline), :mod:`.metrics` (Inception).
Reference implementations that tests compare against live in the library next to the fast
ones (e.g. :func:`jaxspatial.models.layers.upfirdn2d_reference`), never here. Figures on a
shared CPU are noisy: compare rows measured in the same run.

This module holds the helpers they share: timing, XLA FLOP counts and the markdown table
(config files are loaded with :func:`jaxspatial.training.config_lib.load`).
"""

from __future__ import annotations

import time
from typing import Callable

import jax
import jax.numpy as jnp

def time_call(fn: Callable, *args, iters: int = 3) -> tuple[float, float]:
  """(first call incl. compile, best steady-state call) in seconds; blocks on results."""
  t = time.perf_counter()
  jax.block_until_ready(fn(*args))
  first = time.perf_counter() - t
  best = float("inf")
  for _ in range(iters):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    best = min(best, time.perf_counter() - t)
  return first, best


def time_interleaved(calls: dict[str, tuple[Callable, tuple]], rounds: int = 60,
                     per_round: int = 5) -> dict[str, float]:
  """Best steady-state seconds of each ``fn(*args)`` in ``calls``, timed in turn: ``rounds``
  rounds of ``per_round`` calls of each. For ratios of millisecond programs: timed one after
  the other, a few calls each, a burst of load lands on one side only (the projection bench
  read 1.43-1.49x for a ratio that reads 1.21x interleaved); in turn, both see the same
  machine."""
  for fn, args in calls.values():
    jax.block_until_ready(fn(*args))                 # compile if jitted, warm the caches
  best = dict.fromkeys(calls, float("inf"))
  for _ in range(rounds):
    for name, (fn, args) in calls.items():
      for _ in range(per_round):
        t = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best[name] = min(best[name], time.perf_counter() - t)
  return best


def matmul_peak_gflops(n: int = 2048) -> float:
  """Achieved float32 GFLOP/s of an n x n matmul: the reference 'peak' for this machine."""
  a = jnp.ones((n, n), jnp.float32)
  f = jax.jit(lambda a: a @ a)
  _, best = time_call(f, a, iters=5)
  return 2 * n ** 3 / best / 1e9


def compile_with_flops(jitted, *args) -> tuple[Callable, float, float]:
  """(compiled executable, compile seconds, FLOPs per call from XLA's cost analysis)."""
  t = time.perf_counter()
  compiled = jitted.lower(*args).compile()
  seconds = time.perf_counter() - t
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return compiled, seconds, float(cost.get("flops", float("nan"))) if cost else float("nan")


def print_table(rows: list[dict]) -> None:
  """Markdown table of the union of the rows' keys."""
  keys: list[str] = []
  for r in rows:
    keys += [k for k in r if k not in keys]
  print("| " + " | ".join(keys) + " |")
  print("|" + "---|" * len(keys))
  for r in rows:
    print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")
