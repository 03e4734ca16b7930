"""Benchmarks: functions that time one piece of the package and return table rows.

``python -m jaxspatial.bench NAME`` runs them (:mod:`jaxspatial.bench` lists the names). One
module per layer or family: :mod:`.layers` (fast ops vs their references), :mod:`.stylegan2`
(generator, train step, FLOPs), :mod:`.ssn`, :mod:`.spatialgan`, :mod:`.regressor`,
:mod:`.data` (shapes rendering and the input pipeline), :mod:`.metrics` (Inception).
Reference implementations that tests compare against live in the library next to the fast
ones (e.g. :func:`jaxspatial.models.layers.upfirdn2d_reference`), never here. Figures on a
shared CPU are noisy: compare rows measured in the same run.

This module holds the helpers they share: timing, XLA FLOP counts, the markdown table and the
two columns every table has (:func:`flop_rate`: achieved GFLOP/s and its share of the peak that
:func:`peak_gflops` measures in the same run and prints; :func:`no_flop_rate` where FLOPs make
no sense, with the reason as the table's note), and the options the random-weight network
benchmarks share (:func:`network_parser`, :func:`check_network_args`). Config files are
loaded with :func:`jaxspatial.training.config_lib.load`.
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import jax
import jax.numpy as jnp

from jaxspatial import errors


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


_PEAK: dict[str, float] = {}


def peak_gflops() -> float:
  """This run's reference peak, GFLOP/s: a large matmul on the default device, measured on the
  first call and printed as the ``peak:`` line above the table (float32 2048^2 on a CPU;
  bfloat16 8192^2 on a GPU/TPU, the tensor-core rate that training's bf16 steps aim at)."""
  if "gflops" not in _PEAK:
    device = jax.devices()[0]
    n, dtype = (2048, jnp.float32) if device.platform == "cpu" else (8192, jnp.bfloat16)
    a = jnp.ones((n, n), dtype)
    _, best = time_call(jax.jit(lambda a: a @ a), a, iters=5)
    _PEAK["gflops"] = 2 * n ** 3 / best / 1e9
    print(f"peak: {_PEAK['gflops']:.1f} GFLOP/s ({jnp.dtype(dtype).name} {n}x{n} matmul on "
          f"{device.device_kind}, measured in this run)")
  return _PEAK["gflops"]


def flop_rate(flops: float, seconds: float, prefix: str = "") -> dict:
  """The two columns every bench table carries: ``GFLOP/s`` achieved (XLA's cost-analysis
  FLOPs of the timed program over its measured seconds) and ``% of peak`` (of
  :func:`peak_gflops`, measured in the same run). ``prefix`` names whose rate it is when a row
  has several (rosinality's and ours)."""
  gflops = flops / seconds / 1e9
  return {f"{prefix}GFLOP/s": float(f"{gflops:.4g}"),
          f"{prefix}% of peak": f"{100 * gflops / peak_gflops():.1f}%"}


def no_flop_rate(reason: str, prefix: str = "") -> dict:
  """The same columns where a FLOP rate would be an invented number (data loading, HTTP
  round trips, counts that are not timed): ``n/a``, and ``reason`` printed as the table's
  note (the ``_note`` key is no column)."""
  return {f"{prefix}GFLOP/s": "n/a", f"{prefix}% of peak": "n/a", "_note": reason}


def compile_with_flops(jitted, *args, **kwargs) -> tuple[Callable, float, float]:
  """(compiled executable, compile seconds, FLOPs per call from XLA's cost analysis)."""
  t = time.perf_counter()
  compiled = jitted.lower(*args, **kwargs).compile()
  seconds = time.perf_counter() - t
  return compiled, seconds, executable_flops(compiled)


def executable_flops(compiled) -> float:
  """FLOPs per call of a compiled executable (XLA's cost analysis; nan if it has none)."""
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", float("nan"))) if cost else float("nan")


def time_with_flops(jitted, *args, iters: int = 3) -> tuple[float, float]:
  """(best steady-state seconds, FLOPs per call) of ``jitted(*args)``, compiled once ahead of
  time (:func:`compile_with_flops`) and that executable timed (:func:`time_call`)."""
  compiled, _, flops = compile_with_flops(jitted, *args)
  return time_call(compiled, *args, iters=iters)[1], flops


def network_parser(prog: str, description: str) -> argparse.ArgumentParser:
  """The command line of a random-weight network benchmark (:mod:`.ssn`, :mod:`.spatialgan`)
  with the network options they share: ``--resolution`` 32, ``--batch`` 16, ``--channel-base``
  2048, ``--channel-max`` 128."""
  p = argparse.ArgumentParser(prog=prog, description=description)
  p.add_argument("--resolution", type=int, default=32)
  p.add_argument("--batch", type=int, default=16)
  p.add_argument("--channel-base", type=int, default=2048)
  p.add_argument("--channel-max", type=int, default=128)
  return p


def check_network_args(args: argparse.Namespace) -> None:
  """A one-line UserError for a :func:`network_parser` network too small to build
  (``--resolution`` < 8) or nothing to time (``--batch`` or ``--repeats`` < 1)."""
  if args.resolution < 8 or args.batch < 1 or args.repeats < 1:
    raise errors.UserError("--resolution must be >= 8 and --batch, --repeats positive")


def print_table(rows: list[dict]) -> None:
  """Markdown table of the union of the rows' keys; the rows' ``_note`` s (see
  :func:`no_flop_rate`) follow it, each once."""
  keys: list[str] = []
  for r in rows:
    keys += [k for k in r if k not in keys and not k.startswith("_")]
  print("| " + " | ".join(keys) + " |")
  print("|" + "---|" * len(keys))
  for r in rows:
    print("| " + " | ".join(str(r.get(k, "")) for k in keys) + " |")
  for note in dict.fromkeys(r["_note"] for r in rows if "_note" in r):
    print(f"note: {note}")
