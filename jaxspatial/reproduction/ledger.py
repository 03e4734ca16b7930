"""The results ledger: one committed JSON row per unit of a reproduction.

A **unit** is one (target, setting, seed): it trains the model(s) it needs and runs every
measurement of them in one process, then writes its row::

    docs/reproduction/results/<target>/<setting>-s<seed>.json

A row holds the unit's metrics, the exact commands, the configs of the runs it trained, the
code commit, the target's result version (rows of another version are never mixed into a
page), the wall time of each phase, the machine, and the sha256 of every shared reference
file it used (the critic). Rows are written whole or not at all (a temporary file in the same
folder, then a rename), and only after the unit's last measurement: a unit cut short leaves
no row. Run folders are a local cache (``runs/``), never part of the record.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import hashlib
import json
import os
import pathlib
import platform
import subprocess
from typing import Any

RESULTS = "results"
REPO = pathlib.Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class Row:
  """One unit's result. ``phases``: wall seconds per phase of this unit's own process
  (``train <setting>`` only when it trained that run here); ``train_seconds``: the
  training wall time of the unit's model wherever it was measured (None: not timed)."""
  target: str
  setting: str
  seed: int
  version: int
  scale: str
  metrics: dict[str, float]
  commands: tuple[str, ...]
  phases: dict[str, float]
  train_seconds: float | None
  configs: dict[str, Any]
  references: dict[str, dict[str, str]]
  machine: dict[str, Any]
  commit: str
  date: str
  notes: str = ""

  @property
  def unit(self) -> str:
    return unit_name(self.setting, self.seed)

  @property
  def wall_seconds(self) -> float:
    return float(sum(self.phases.values()))

  def to_json(self) -> str:
    value = dataclasses.asdict(self)
    value["commands"] = list(self.commands)
    return json.dumps(value, indent=2, sort_keys=True, allow_nan=True) + "\n"

  @classmethod
  def from_json(cls, text: str) -> "Row":
    value = json.loads(text)
    value["commands"] = tuple(value["commands"])
    return cls(**value)


def unit_name(setting: str, seed: int) -> str:
  return f"{setting}-s{seed}"


def row_path(results: str | pathlib.Path, target: str, setting: str, seed: int) -> pathlib.Path:
  return pathlib.Path(results) / target / f"{unit_name(setting, seed)}.json"


def write(results: str | pathlib.Path, row: Row) -> pathlib.Path:
  """Writes ``row`` atomically (a reader sees the old file or the whole new one)."""
  path = row_path(results, row.target, row.setting, row.seed)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
  with open(tmp, "w") as f:
    f.write(row.to_json())
    f.flush()
    os.fsync(f.fileno())
  tmp.replace(path)
  return path


def read(results: str | pathlib.Path, target: str, version: int | None = None) -> list[Row]:
  """Every row of ``target`` (of result ``version`` when given), sorted by setting and seed.
  Files that are not whole rows (a stray temporary file) are not rows."""
  folder = pathlib.Path(results) / target
  rows = [Row.from_json(p.read_text()) for p in sorted(folder.glob("*.json"))
          if not p.name.startswith(".")] if folder.is_dir() else []
  return [r for r in rows if version is None or r.version == version]


def sha256(path: str | pathlib.Path) -> str:
  h = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def machine() -> dict[str, Any]:
  """What ran the unit: platform and device kind, CPU model and cores, jax and Python."""
  import jax
  device = jax.devices()[0]
  cpu = platform.processor() or platform.machine()
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  return {"platform": device.platform, "device_kind": device.device_kind,
          "device_count": jax.device_count(), "cpu": cpu, "cores": os.cpu_count(),
          "jax": jax.__version__, "python": platform.python_version()}


@functools.cache
def commit() -> str:
  """The checkout's commit, ``+dirty`` when tracked library files differ from it; "unknown"
  outside a git checkout. Read once per process: a checkout moved while a unit runs (its
  modules already imported) must not relabel the row with code that did not run."""
  def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True,
                          check=True).stdout.strip()
  try:
    head = git("rev-parse", "--short=12", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "jaxspatial", "configs")
  except (OSError, subprocess.CalledProcessError):
    return "unknown"
  return head + ("+dirty" if dirty else "")


def today() -> str:
  return datetime.date.today().isoformat()
