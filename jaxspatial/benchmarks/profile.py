"""Where a compiled program's time goes, by network, pass and op kind.

    python -m jaxspatial.bench profile                       # 64 px cm1 train iteration, 256 px G
    python -m jaxspatial.bench profile --targets generator --calls 3

Each target is compiled once, run once to warm up, then run ``--calls`` times under
``jax.profiler`` (a perfetto trace). XLA:CPU records one trace event per executed kernel
("thunk"), named after its HLO instruction; the optimised HLO says what the instruction is:

* network: ``Generator`` / ``Discriminator`` in the instruction's ``op_name`` (Flax puts the
  module path there), else ``other`` (losses, Adam, EMA);
* pass: ``backward`` when the op_name is under ``transpose(jvp(...))``, else ``forward``;
* kind: a convolution (``conv weight grad`` when its window is the activation's size, >= 4,
  as XLA writes weight gradients; ``conv`` otherwise), ``matmul``, ``FIR`` (a fusion of >= 8
  slices or pads: the [1,3,3,1] resampling and its transpose), ``reduction``,
  ``transpose/copy`` (nothing but data movement), ``elementwise`` (any other fusion).

Shares are of the summed kernel time; on 2 cores XLA may run two kernels at once, so the sum
can exceed the wall time, which is reported separately.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import re
import tempfile
import time
from typing import Callable

import jax

_COMPUTATION = re.compile(r"^(?:ENTRY )?%([\w.\-]+) .*\{$")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = .*? ([a-z][\w\-]*)\((.*)$")
_MOVES = {"transpose", "copy", "bitcast", "reshape", "broadcast", "parameter", "constant",
          "tuple", "get-tuple-element", "concatenate", "slice", "dynamic-slice",
          "dynamic-update-slice"}


def parse_hlo(text: str) -> dict[str, dict[str, tuple[str, str]]]:
  """Optimised HLO text -> {computation: {instruction: (opcode, rest of its line)}}."""
  computations: dict[str, dict[str, tuple[str, str]]] = {}
  current = None
  for line in text.splitlines():
    m = _COMPUTATION.match(line)
    if m:
      current = computations.setdefault(m.group(1), {})
      continue
    m = _INSTRUCTION.match(line)
    if m and current is not None:
      current[m.group(1)] = (m.group(2), m.group(3))
  return computations


def _body(computations, name: str, seen=None) -> list[tuple[str, str]]:
  """(opcode, rest of line) of every instruction of computation ``name`` and those it calls."""
  seen = set() if seen is None else seen
  out = []
  for opcode, rest in computations.get(name, {}).values():
    out.append((opcode, rest))
    for callee in re.findall(r"calls=%([\w.\-]+)", rest):
      if callee not in seen:
        seen.add(callee)
        out += _body(computations, callee, seen)
  return out


def _kind(ops: list[tuple[str, str]]) -> str:
  for opcode, rest in ops:
    if opcode == "convolution":
      size = re.search(r"window=\{size=(\d+)x(\d+)", rest)
      window = max(int(size.group(1)), int(size.group(2))) if size else 1
      return "conv weight grad" if window >= 4 else "conv"
  names = [opcode for opcode, _ in ops]
  if "dot" in names:
    return "matmul"
  if names.count("slice") >= 8 or names.count("pad") >= 8:
    return "FIR"
  if "reduce" in names or "reduce-window" in names:
    return "reduction"
  if all(n in _MOVES for n in names):
    return "transpose/copy"
  return "elementwise"


def classify(hlo_text: str) -> dict[str, tuple[str, str, str]]:
  """Every instruction of the entry computation -> (network, pass, kind)."""
  computations = parse_hlo(hlo_text)
  entry = re.search(r"^ENTRY %([\w.\-]+)", hlo_text, re.M).group(1)
  instructions = computations[entry]

  def names_of(name: str, depth: int = 0) -> list[str]:
    """op_names of an instruction and its fused body; without any (XLA drops them on some
    weight-gradient convolutions), those of its operands."""
    _, rest = instructions[name]
    names = re.findall(r'op_name="([^"]*)"', rest)
    for callee in re.findall(r"calls=%([\w.\-]+)", rest):
      names += [n for _, line in _body(computations, callee)
                for n in re.findall(r'op_name="([^"]*)"', line)]
    if not names and depth < 3:
      operands = rest.split("), ")[0]
      for operand in re.findall(r"%([\w.\-]+)", operands):
        if operand in instructions:
          names += names_of(operand, depth + 1)
    return names

  out = {}
  for name, (opcode, rest) in instructions.items():
    ops = [(opcode, rest)]
    for callee in re.findall(r"calls=%([\w.\-]+)", rest):
      ops += _body(computations, callee)
    joined = " ".join(names_of(name))
    network = ("G" if "Generator" in joined or "Synthesis" in joined else
               "D" if "Discriminator" in joined else "other")
    kind = _kind(ops)
    direction = "backward" if "transpose(" in joined or kind == "conv weight grad" else "forward"
    out[name] = (network, direction, kind)
  return out


def _trace_events(run: Callable[[], object], calls: int) -> tuple[list[dict], float]:
  with tempfile.TemporaryDirectory() as tmp:
    jax.profiler.start_trace(tmp, create_perfetto_trace=True)
    t = time.perf_counter()
    for _ in range(calls):
      run()
    wall = (time.perf_counter() - t) / calls
    jax.profiler.stop_trace()
    [path] = glob.glob(f"{tmp}/**/*.trace.json.gz", recursive=True)
    with gzip.open(path) as f:
      data = json.load(f)
  events = data["traceEvents"] if isinstance(data, dict) else data
  return [e for e in events if e.get("ph") == "X"], wall


def profile(compiled, args: tuple, calls: int = 2, label: str = "") -> list[dict]:
  """Rows ``{target, network, pass, kind, ms/call, share}`` for a compiled executable
  (``jax.jit(f).lower(*args).compile()``), largest first, plus a total row, which alone has a
  FLOP rate (the program's FLOPs over its wall time per call): XLA's cost analysis counts a
  whole program, not each kernel kind."""
  from jaxspatial.benchmarks import executable_flops, flop_rate, no_flop_rate
  kinds = classify(compiled.as_text())
  jax.block_until_ready(compiled(*args))
  events, wall = _trace_events(lambda: jax.block_until_ready(compiled(*args)), calls)
  totals: dict[tuple[str, str, str], float] = collections.defaultdict(float)
  for e in events:
    if e["name"] in kinds:
      totals[kinds[e["name"]]] += e["dur"] / 1e3 / calls      # microseconds -> ms per call
  kernel_ms = sum(totals.values())
  rows = [{"target": label, "network": n, "pass": p, "kind": k, "ms/call": round(ms, 1),
           "share": f"{ms / kernel_ms:.1%}",
           **no_flop_rate("XLA's cost analysis counts FLOPs per program, not per kernel kind: "
                          "the rate is on the total row (the program's FLOPs over its wall "
                          "time per call)")}
          for (n, p, k), ms in sorted(totals.items(), key=lambda kv: -kv[1])]
  rows.append({"target": label, "network": "all", "pass": "", "kind": "kernels (sum)",
               "ms/call": round(kernel_ms, 1), "share": f"wall {wall * 1e3:.0f} ms/call",
               **flop_rate(executable_flops(compiled), wall)})
  return rows


def by_kind(rows: list[dict]) -> dict[str, float]:
  """{kind: ms/call} summed over networks and passes (the total row left out)."""
  out: dict[str, float] = collections.defaultdict(float)
  for r in rows:
    if r["network"] != "all":
      out[r["kind"]] += r["ms/call"]
  return dict(out)


def train_target(resolution: int = 64, channel_multiplier: int = 1, batch: int = 8):
  """(compiled plain-phase train step, its args): the 64 px cm1 iteration of
  ``bench rosinality``; each call advances the trainer's donated state."""
  import numpy as np
  from jaxspatial.benchmarks import rosinality
  from jaxspatial.training import gan_step, loop
  config = rosinality.train_config(resolution, channel_multiplier, batch)
  trainer = loop.Trainer(config)
  trainer.initialize()
  real = np.random.default_rng(0).uniform(-1, 1, (batch, resolution, resolution, 3))
  images = trainer.global_batch({"image": real.astype(np.float32)})
  step = trainer.compiled_step(gan_step.Phase(r1=False, path_length=False))
  compiled = step.lower(trainer.state, images).compile()

  class Step:
    """Calls the compiled step on the trainer's current state (the old one is donated)."""
    def as_text(self):
      return compiled.as_text()

    def cost_analysis(self):
      return compiled.cost_analysis()

    def __call__(self, images):
      trainer.state, metrics = compiled(trainer.state, images)
      return metrics

  return Step(), (images,)


def generator_target(resolution: int = 256, channel_multiplier: int = 2, batch: int = 8):
  """(compiled G forward with const noise, its args): row 1 of ``bench rosinality``."""
  import jax.numpy as jnp
  from jaxspatial import families
  from jaxspatial import models
  g = families.build_generator(models.stylegan2_model_config(
      resolution, channel_multiplier=channel_multiplier))
  variables = g.init(jax.random.key(1), jnp.zeros((1, g.z_dim)))
  z = jax.random.normal(jax.random.key(0), (batch, g.z_dim))
  return jax.jit(lambda v, z: g.apply(v, z)).lower(variables, z).compile(), (variables, z)


TARGETS = {"train": ("train iter 64px cm1 b8", train_target),
           "generator": ("G forward 256px cm2 b8", generator_target)}


def main(argv: list[str] | None = None,
         prog: str = "python -m jaxspatial.bench profile") -> None:
  import argparse
  from jaxspatial.benchmarks import print_table
  from jaxspatial.errors import UserError
  p = argparse.ArgumentParser(prog=prog, description="Kernel time of a training iteration or "
                              "generator forward by network, pass and op kind.")
  p.add_argument("--targets", default="train,generator",
                 help="comma-separated: train (64 px cm1 plain iteration, batch 8), "
                      "generator (256 px config-f forward, batch 8)")
  p.add_argument("--calls", type=int, default=2,
                 help="traced calls per target after one warm-up call")
  args = p.parse_args(argv)
  names = [t for t in args.targets.split(",") if t]
  unknown = sorted(set(names) - set(TARGETS))
  if unknown or args.calls < 1:
    raise UserError(f"--targets: choose from {sorted(TARGETS)} (got {unknown}); --calls >= 1")
  print(f"jax {jax.__version__}, {jax.devices()[0].device_kind}")
  for name in names:
    label, build = TARGETS[name]
    compiled, call_args = build()
    rows = profile(compiled, call_args, args.calls, label)
    print_table(rows)
    print("by kind: " + ", ".join(f"{k} {v:.0f} ms" for k, v in
                                  sorted(by_kind(rows).items(), key=lambda kv: -kv[1])))
