"""Units, their order, their budget, and pages rebuilt from rows.

Each page is a :class:`~jaxspatial.reproduction.runs.Target` declared in its module (its
settings and seeds, result version, prior time estimate, the function that runs one unit and
the one that writes the page from rows). :data:`TARGETS` lists them in campaign priority
order; ``--status`` and ``--budget`` follow it, and within a target run the seeds in turn
(seed 0's settings first), so that paired comparisons fill up seed by seed.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import pathlib
import re
import statistics
import time
from typing import Iterator

from jaxspatial import errors
from jaxspatial.reproduction import ledger, runs

TARGETS = {
    "spatialgan-comove": "spatialgan:TARGET",
    "drag-table2": "drag:TARGET",
    "spatialgan-table1": "spatialgan_table1:TARGET",
    "spatialgan-indoor-edits": "spatialgan_table1:EDITS_TARGET",
    "ssn-droplets": "droplets:TARGET",
    "ssn-vs-stylegan2": "ssn_table1:TARGET",
    "regressor-variation": "composition:VARIATION_TARGET",
    "regressor-alpha-blend": "composition:ALPHA_TARGET",
    "regressor-table3-lit": "composition:LIT_TARGET",
    "ada-limited-data": "ada:TARGET",
    "spatialgan-ablations": "spatialgan_ablations:TARGET",
    "ssn-lambda": "ssn:TARGET",
    "regressor-table3": "regressor:TABLE3_TARGET",
    "regressor-edits": "regressor:EDITS_TARGET",
}
"""name -> ``module:attribute`` of its :class:`~.runs.Target`, highest priority first: the two
SpatialGAN claims, Table I's ladder and the indoor edits, issue 32's evidence in its order (SSN's
droplets, SSN against StyleGAN2, the variation maps, α-blending, Table 3 in the lit world),
ADA's limited-data runs, the ablations, then the analyses migrated from earlier runs (a target
that reuses another's runs is planned right after that target's units of each seed)."""

SCALES = ("small", "smoke")


def target(name: str) -> runs.Target:
  path, attr = TARGETS[name].split(":")
  return getattr(importlib.import_module(f"jaxspatial.reproduction.{path}"), attr)


@dataclasses.dataclass(frozen=True)
class Unit:
  target: str
  setting: str
  seed: int

  @property
  def name(self) -> str:
    return ledger.unit_name(self.setting, self.seed)


@dataclasses.dataclass(frozen=True)
class Campaign:
  """Where rows, pages and runs live, at which scale, with how many seeds per setting
  (``seeds=None``: each target's own)."""
  out: pathlib.Path
  runs: pathlib.Path
  scale: str = "small"
  seeds: int | None = None

  @property
  def results(self) -> pathlib.Path:
    return self.out / ledger.RESULTS

  def units(self, name: str) -> list[Unit]:
    """Every unit of target ``name``, seed by seed."""
    t = target(name)
    seeds = self.seeds if self.seeds is not None else t.seeds
    return [Unit(name, setting, seed) for seed in range(seeds) for setting in t.settings]

  def rows(self, name: str) -> list[ledger.Row]:
    """The rows of ``name`` at this scale and the target's current result version."""
    return [r for r in ledger.read(self.results, name, target(name).version)
            if r.scale == self.scale]

  def missing(self, name: str) -> list[Unit]:
    done = {r.unit for r in self.rows(name)}
    return [u for u in self.units(name) if u.name not in done]

  def estimate(self, unit: Unit) -> float:
    """Seconds the unit should take: the median wall time of the rows of its setting, else
    its setting's prior scaled by how the target's measured rows compare with their own
    priors (the median of wall / prior: this machine's speed), else the prior itself. Another
    setting's wall time alone would misjudge a setting that trains more (an evaluation-only
    unit next to one that trains from scratch). Only rows that trained a run in their own
    process count: one that found all its runs in the cache took minutes and says nothing of
    what a unit that trains will take."""
    rows = [r for r in self.rows(unit.target) if any(p.startswith("train ") for p in r.phases)]
    own = [r.wall_seconds for r in rows if r.setting == unit.setting]
    if own:
      return float(statistics.median(own))
    priors = {k: 60.0 * v for k, v in target(unit.target).estimate_minutes.items()}
    speed = [r.wall_seconds / priors[r.setting] for r in rows if r.setting in priors]
    return priors[unit.setting] * (float(statistics.median(speed)) if speed else 1.0)

  def claim(self, unit: Unit) -> pathlib.Path:
    """The lock file a process holds while it runs ``unit`` (:func:`runs.held`), so that
    several ``reproduce`` processes on one run cache and ledger split the missing units."""
    return self.runs / self.scale / "claims" / f"{unit.target}.{unit.name}.lock"

  def run(self, unit: Unit) -> ledger.Row:
    """Trains and measures ``unit`` in this process, then writes its row (whole, last)."""
    t = target(unit.target)
    commit = ledger.commit()                      # the code this process runs, read first
    session = runs.Session(self.runs, self.scale, self.out)
    metrics = t.unit(session, unit.setting, unit.seed)
    row = ledger.Row(
        target=unit.target, setting=unit.setting, seed=unit.seed, version=t.version,
        scale=self.scale, metrics=metrics, commands=tuple(dict.fromkeys(session.commands)),
        phases=session.phases, train_seconds=session.train_seconds, configs=session.configs,
        references=session.references, machine=ledger.machine(), commit=commit,
        date=ledger.today())
    ledger.write(self.results, row)
    return row

  def page(self, name: str) -> pathlib.Path:
    """Rewrites ``out/NAME.md`` from the committed rows alone (its own and those it
    borrows)."""
    t = target(name)
    seeds = range(self.seeds if self.seeds is not None else t.seeds)
    expected = [u.name for u in self.units(name)]
    rows = self.rows(name)
    for other, setting in t.borrows:
      rows += [r for r in self.rows(other) if r.setting == setting and r.seed in seeds]
      expected += [f"{other}:{ledger.unit_name(setting, s)}" for s in seeds]
    return t.page(rows, self.out, expected)

  def plan(self, names: list[str]) -> list[Unit]:
    """The missing units of ``names`` in the order they run: by target priority and seed,
    except that a target which reuses another's runs follows that target seed by seed
    (drag-table2's seed-0 units right after spatialgan-comove's) while that target has
    units of the seed to run; otherwise it keeps its own priority (regressor-variation
    before the ablations when regressor-table3's rows are all there)."""
    order = list(TARGETS)
    missing = [u for n in names for u in self.missing(n)]
    pending = {(u.target, u.seed) for u in missing}

    def key(unit: Unit) -> tuple[int, int, int]:
      host = target(unit.target).reuses
      if host in names and (host, unit.seed) in pending:
        return order.index(host), unit.seed, 1
      return order.index(unit.target), unit.seed, 0

    return sorted(missing, key=key)

  def run_missing(self, names: list[str], budget: float | None,
                  only: list[str] | None = None) -> Iterator[str]:
    """Runs the missing units of ``names`` (those named in ``only``, if given) in order while
    the next one's estimate fits in ``budget`` seconds (None: no limit); yields a line per
    event and rewrites the pages of the targets that gained rows (and of those that borrow
    their rows). A unit that fails with a user-facing error (a run cache in its way) is
    reported and passed over, so that the others still run unattended; the error is raised
    once the rest are done."""
    start = time.perf_counter()
    gained: list[str] = []
    failed: list[str] = []
    plan = [u for u in self.plan(names) if only is None or u.name in only]
    if not plan:
      yield (f"every {'named ' if only else ''}unit of {', '.join(names)} has a row; nothing "
             "to run (--page-only rewrites the pages, --status lists the targets)")
    for k, unit in enumerate(plan):
      with runs.held(self.claim(unit), wait=False) as mine:
        if not mine:
          yield f"skipping {unit.target} {unit.name}: another process is running it"
          continue
        if unit.name in {r.unit for r in self.rows(unit.target)}:
          yield f"skipping {unit.target} {unit.name}: another process wrote its row"
          continue
        left = None if budget is None else budget - (time.perf_counter() - start)
        need = self.estimate(unit)
        if left is not None and need > left:
          yield (f"stopping: {unit.target} {unit.name} would take ~{_duration(need)}, "
                 f"{_duration(max(left, 0))} of the budget left; {len(plan) - k} unit(s) "
                 "remain")
          break
        yield (f"unit {k + 1}/{len(plan)}: {unit.target} {unit.name} "
               f"(estimate {_duration(need)})")
        t0 = time.perf_counter()
        try:
          row = self.run(unit)
        except errors.UserError as e:
          failed.append(f"{unit.target} {unit.name}: {e}")
          yield f"failed: {failed[-1]}; going on with the next unit"
          continue
        trained = sum(s for p, s in row.phases.items() if p.startswith("train "))
        yield (f"wrote {ledger.row_path(self.results, unit.target, unit.setting, unit.seed)} "
               f"({_duration(time.perf_counter() - t0)}: training {trained:.0f} s, measuring "
               f"{row.wall_seconds - trained:.0f} s)")
      if unit.target not in gained:
        gained.append(unit.target)
    borrowers = [n for n in TARGETS if n not in gained
                 and any(other in gained for other, _ in target(n).borrows)]
    for name in gained + borrowers:
      yield f"wrote {self.page(name)}"
    if failed:
      raise errors.UserError(f"{len(failed)} unit(s) failed, the first {failed[0]}")

  def status(self, names: list[str]) -> str:
    """A table: per target, units done / expected, hours of missing work, the next units."""
    lines = ["| target | version | units done | missing | est. hours left | next |",
             "|---|---|---|---|---|---|"]
    total_units, total_hours = 0, 0.0
    for name in names:
      missing = self.missing(name)
      hours = sum(self.estimate(u) for u in missing) / 3600
      total_units, total_hours = total_units + len(missing), total_hours + hours
      nxt = ", ".join(u.name for u in missing[:3]) + (" …" if len(missing) > 3 else "")
      if not target(name).settings:
        nxt = "its page reads the rows of " + ", ".join(
            dict.fromkeys(other for other, _ in target(name).borrows))
      lines.append(f"| {name} | {target(name).version} | "
                   f"{len(self.units(name)) - len(missing)}/{len(self.units(name))} | "
                   f"{len(missing)} | {hours:.1f} | {nxt or '–'} |")
    lines.append(f"| all | | | {total_units} | {total_hours:.1f} | estimates: a setting's "
                 "median wall time, else its prior (slowest machine measured) at the speed "
                 "the target's measured rows show |")
    return "\n".join(lines)


_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600}


_TERM = r"(\d+(?:\.\d*)?)\s*(min|s|m|h)"


def parse_budget(text: str) -> float:
  """``2h``, ``90m``, ``45min``, ``3600s``, ``2h30m`` or a plain number of hours -> seconds."""
  if re.fullmatch(r"\s*\d+(?:\.\d*)?\s*", text):
    seconds = float(text) * 3600
  elif re.fullmatch(rf"\s*(?:{_TERM}\s*)+", text):
    seconds = sum(float(n) * _UNITS[unit] for n, unit in re.findall(_TERM, text))
  else:
    seconds = 0.0
  if seconds <= 0:
    raise errors.UserError(f"--budget must be a positive duration such as 2h, 90m, 2h30m or "
                           f"3600s, not {text!r}")
  return seconds


def _duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
