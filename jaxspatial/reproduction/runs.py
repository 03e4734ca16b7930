"""Training runs and evaluations of a reproduction, found again when they already exist.

A :class:`RunSpec` names one training run by target, setting and seed and says how to build
its config (a ``configs/*.py`` preset plus ``--config.KEY=VALUE`` overrides), so the page can
print the exact ``python -m jaxspatial.train`` command that makes it. :class:`Session`
trains a run through :func:`jaxspatial.training.loop.train` only when its workdir does not
already hold the final step (a partial run resumes), records the training wall time in the
workdir (``reproduce.json``) and evaluates checkpoints with the metric registry, caching each
result in the workdir keyed by the equivalent ``python -m jaxspatial.evaluate`` command.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import pathlib
import shlex
import time
from typing import Any, Callable, Iterator

import ml_collections

from jaxspatial import errors, families
from jaxspatial.reproduction import ledger

RECORD = "reproduce.json"
# Keys that change how a run is logged or saved, not what it computes: a run found with other
# values of these is still the same run (total_steps: a shorter run resumes to the target).
_BOOKKEEPING = ("total_steps", "checkpoint_every", "log_every", "sample_every",
                "keep_checkpoints", "compile_cache_dir", "mesh")


@contextlib.contextmanager
def held(path: pathlib.Path, wait: bool) -> Iterator[bool]:
  """An exclusive ``flock`` on ``path`` (created with its folder) for the block, so that
  reproductions in several processes share one run cache: yields True once held; with
  ``wait=False``, False at once when another process holds it. The kernel drops the lock
  when its process ends, however it ends, so none is ever left stale."""
  path.parent.mkdir(parents=True, exist_ok=True)
  with open(path, "a") as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
      yield False
      return
    try:
      yield True
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


class Stopped(Exception):
  """Training returned before its last step: the process was asked to stop (SIGTERM), and the
  run saved a checkpoint that the next process resumes. Not a user error: the unit writes no
  row and the campaign stops instead of going on with the next unit."""


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """One training run: ``<runs>/<scale>/<target>/<setting>-s<seed>``.

  ``config`` is a file in ``configs/`` and ``preset`` its preset; ``overrides`` maps dotted
  config keys to values, exactly the ``--config.KEY=VALUE`` flags of the train command.
  """
  target: str
  setting: str
  seed: int
  config: str
  preset: str
  overrides: tuple[tuple[str, Any], ...] = ()

  def workdir(self, root: pathlib.Path) -> pathlib.Path:
    return root / self.target / f"{self.setting}-s{self.seed}"

  def build(self) -> ml_collections.ConfigDict:
    from jaxspatial.training import config_lib
    config = config_lib.load(str(config_lib.CONFIGS_DIR / self.config), self.preset)
    config.seed = self.seed
    for key, value in self.overrides:
      *path, leaf = key.split(".")
      node = config
      for part in path:
        node = node[part]
      node[leaf] = value
    return config

  def command(self, root: pathlib.Path) -> str:
    flags = [f"--config.seed={self.seed}"] + [f"--config.{k}={_flag(v)}"
                                               for k, v in self.overrides]
    return shlex.join(["python", "-m", "jaxspatial.train", "--config",
                       f"configs/{self.config}:{self.preset}", "--workdir",
                       display(self.workdir(root)), *flags])


def _flag(value: Any) -> str:
  return ",".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


@dataclasses.dataclass(frozen=True)
class Target:
  """One page of the ledger and the units that fill it.

  ``settings`` × seeds ``0..seeds-1`` are its units; ``version`` is its result version (bump
  it when a change alters results: rows of another version are not mixed in);
  ``estimate_minutes[setting]`` a unit's wall time before any row has measured it;
  ``unit(session, setting, seed) -> metrics`` trains (or reuses) and measures one unit;
  ``page(rows, out, expected_unit_names) -> path`` writes the page from rows alone;
  ``borrows``: (target, setting) pairs whose rows (of this target's seeds) the page shows
  beside its own where the setting is the same run (they count as ``target:unit``);
  ``reuses``: the target whose runs its units measure (from the local cache, retrained when
  missing): its units of a seed are scheduled right after that target's units of the seed,
  while the cache still holds them.
  """
  name: str
  version: int
  settings: tuple[str, ...]
  seeds: int
  estimate_minutes: dict[str, float]
  unit: Callable[["Session", str, int], dict[str, float]]
  page: Callable[[list, pathlib.Path, list[str]], pathlib.Path]
  borrows: tuple[tuple[str, str], ...] = ()
  reuses: str = ""


@dataclasses.dataclass
class Run:
  """A trained run: its workdir, spec, training seconds (None: found trained, not timed)."""
  spec: RunSpec
  workdir: pathlib.Path
  train_seconds: float | None
  command: str


def _differences(saved: ml_collections.ConfigDict, wanted: ml_collections.ConfigDict,
                 overridden: set[str]) -> list[str]:
  """``key=saved (wanted w)`` for every config value that differs. A key the saved config
  lacks and the spec does not set (``overridden``: dotted keys) is the same: it was added to
  the code after that run, and a new key's default keeps the old behaviour
  (``data.lighting=False``, ``model.spatial_conditioning="modconv"``, ``freeze_d=0``)."""
  a, b = json.loads(saved.to_json_best_effort()), json.loads(wanted.to_json_best_effort())
  out = []

  def walk(x: Any, y: Any, prefix: str) -> None:
    if x is None and y is not None and not any(
        k == prefix[:-1] or k.startswith(prefix) for k in overridden):
      return
    if isinstance(x, dict) and isinstance(y, dict):
      for k in sorted(set(x) | set(y)):
        if not prefix and k in _BOOKKEEPING:
          continue
        walk(x.get(k), y.get(k), f"{prefix}{k}.")
    elif x != y and not (isinstance(x, list) and isinstance(y, list) and x == list(y)):
      out.append(f"{prefix[:-1]}={x!r} (wanted {y!r})")

  walk(a, b, "")
  return out


class Session:
  """Trains, reuses and evaluates the runs of one unit (:mod:`.ledger`), and records what
  the unit's row needs: the commands, the configs of its runs, the wall time of each phase
  in this process, and the shared reference files it used.

  Runs live under ``<runs>/<scale>/`` (a local cache: reused when this machine still holds
  them, retrained otherwise), so smoke-scale runs never stand in for small-scale ones.
  ``out`` is the pages' folder, where the shared references live (``references/``).
  """

  def __init__(self, runs: str | pathlib.Path, scale: str, out: str | pathlib.Path):
    self.root = pathlib.Path(runs) / scale
    self.scale = scale
    self.out = pathlib.Path(out)
    self.commands: list[str] = []
    self.phases: dict[str, float] = {}
    self.configs: dict[str, Any] = {}
    self.references: dict[str, dict[str, str]] = {}
    self.train_seconds: float | None = None

  def train(self, spec: RunSpec) -> Run:
    """The run of ``spec``: reused when its workdir holds ``total_steps`` with the same
    config, resumed when it holds fewer, trained from scratch otherwise. The unit's row
    takes the training time of the last run it asked for (its own model). Another process
    of the same run cache training this run is waited for (:func:`held`), then its run is
    reused."""
    workdir = spec.workdir(self.root)
    lock = workdir.with_name(workdir.name + ".lock")
    with held(lock, wait=False) as free:
      if free:
        return self._train(spec)
    print(f"waiting for another process to finish {display(workdir)} ...", flush=True)
    with held(lock, wait=True):
      return self._train(spec)

  def _train(self, spec: RunSpec) -> Run:
    from jaxspatial import checkpoint
    from jaxspatial.training import loop
    config, workdir = spec.build(), spec.workdir(self.root)
    record_path = workdir / RECORD
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    # A run killed before its first checkpoint leaves the folder without a step: train it.
    found = any(p.name.isdigit() for p in checkpoint.checkpoint_root(workdir).glob("*"))
    done = checkpoint.resolve_step(workdir) if found else 0
    if found:
      family = families.get(config.model.kind)
      saved_form = families.resolve(family.complete)(config) if family.complete else config
      diff = _differences(checkpoint.read_config(workdir), saved_form,
                          {k for k, _ in spec.overrides} | {"seed"})
      if diff:
        raise errors.UserError(f"{workdir} holds another run ({'; '.join(diff[:3])}); remove it "
                            "or give another --runs")
      if done > config.total_steps:
        raise errors.UserError(f"{workdir} is trained to step {done}, past this target's "
                            f"{config.total_steps}; remove it or give another --runs")
    shown = display(workdir)
    if done < config.total_steps or not found:
      start = time.perf_counter()
      loop.train(config, workdir)
      elapsed = time.perf_counter() - start
      reached = checkpoint.resolve_step(workdir)
      self.phases[f"train {shown}"] = elapsed
      record = {"train_seconds": (record.get("train_seconds") or 0.0) + elapsed,
                "timed_steps": record.get("timed_steps", 0) + reached - done}
      _write_json(record_path, record)
      if reached < config.total_steps:
        raise Stopped(f"{shown} stopped at step {reached} of {config.total_steps} (SIGTERM); "
                      "its checkpoint resumes it when the command runs again")
    command = spec.command(self.root)
    self.commands.append(command)
    self.configs[shown] = json.loads(config.to_json_best_effort())
    timed = record.get("timed_steps") == config.total_steps
    self.train_seconds = record.get("train_seconds") if timed else None
    return Run(spec, workdir, self.train_seconds, command)

  def critic(self, lighting: bool = False) -> str:
    """The shared critic file of this scale (``<out>/references/critic-<scale>.npz``; with
    ``lighting``, the critic of the lit shapes world, ``critic-<scale>-lit.npz``, recorded
    as ``critic-lit``): made once from :func:`critic_spec`'s run when missing; its sha256
    goes into the row."""
    suffix = "-lit" if lighting else ""
    path = self.out / "references" / f"critic-{self.scale}{suffix}.npz"
    if not path.is_file():
      import jaxspatial as js
      from jaxspatial.nets import critic as critic_lib
      run = self.train(critic_spec(self.scale, lighting))
      critic_lib.save_critic_file(js.load(run.workdir), path)
      self.train_seconds = None
    self.references["critic" + suffix] = {"path": display(path), "sha256": ledger.sha256(path)}
    return display(path)

  def evaluate(self, run: Run, metrics: str, **options: Any) -> dict[str, float]:
    """``metrics`` (comma-separated registry names) on ``run``'s latest checkpoint, as
    ``python -m jaxspatial.evaluate --checkpoint DIR --metrics M --opt V ...`` computes them
    (``options``: that command's flags, ``num_comove=256`` for ``--num-comove 256``)."""
    argv = ["python", "-m", "jaxspatial.evaluate", "--checkpoint", display(run.workdir),
            "--metrics", metrics]
    for key, value in options.items():
      argv += [f"--{key.replace('_', '-')}", str(value)]
    command = shlex.join(argv)
    self.commands.append(command)
    return self.measure(run, command, lambda: _evaluate(run.workdir, metrics, options))

  def measure(self, run: Run, key: str, compute: Callable[[], dict[str, float]]
              ) -> dict[str, float]:
    """``compute()`` plus its ``eval_seconds``, cached in ``run``'s workdir under ``key``
    (a description of the measurement, e.g. its command), the checkpoint's step and the
    shared references' hashes, so that a unit cut short after it does not compute it again;
    its wall time is a phase."""
    from jaxspatial import checkpoint
    key = f"{key} @ step {checkpoint.resolve_step(run.workdir)}"
    hashed = key + json.dumps(self.references, sort_keys=True)
    cache = run.workdir / "reproduce-eval" / (hashlib.sha256(hashed.encode()).hexdigest()[:16]
                                              + ".json")
    if cache.is_file():
      return json.loads(cache.read_text())["metrics"]
    start = time.perf_counter()
    results = dict(compute())
    results["eval_seconds"] = time.perf_counter() - start
    self.phases[key.split(" @ ")[0]] = results["eval_seconds"]
    cache.parent.mkdir(exist_ok=True)
    _write_json(cache, {"key": key, "metrics": results})
    return results


def display(path: pathlib.Path) -> str:
  """``path`` as pages and rows print it: relative to the working directory when under it
  (``runs/small/...``), so that no machine's absolute paths are recorded."""
  path = pathlib.Path(path)
  try:
    return str(path.resolve().relative_to(pathlib.Path.cwd().resolve()))
  except ValueError:
    return str(path)


_EVALUATE_FLAGS = ("num", "num_real", "num_prdc", "batch_size", "seed", "num_distortion",
                   "num_comove", "critic", "data")


def _evaluate(workdir: pathlib.Path, metrics: str, options: dict[str, Any]) -> dict[str, float]:
  """The registry's metrics with ``evaluate``'s defaults and ``options`` (its flags)."""
  import jaxspatial as js
  from jaxspatial.metrics import registry
  unknown = set(options) - set(_EVALUATE_FLAGS)
  if unknown:
    raise ValueError(f"not evaluate flags: {sorted(unknown)}")
  model = js.load(workdir)
  num = int(options.get("num", 50000))
  ctx = registry.Context(
      data_cfg=registry.data_config(model.config, options.get("data"), model.resolution),
      num=num,
      num_real=int(options.get("num_real", num)), num_prdc=int(options.get("num_prdc", 10000)),
      batch_size=int(options.get("batch_size", 32)), seed=int(options.get("seed", 0)),
      truncation=1.0, num_distortion=int(options.get("num_distortion", 256)),
      num_comove=int(options.get("num_comove", 256)), critic=options.get("critic"),
      metric_names=registry.metric_names(metrics))
  results, failed = registry.evaluate(model, ctx)
  if failed:
    raise errors.UserError(f"evaluating {workdir}: " + "; ".join(
        f"{name}: {problem}" for name, problem in failed.items()))
  return results


SMOKE_OVERRIDES = (("total_steps", 0),)
"""Smoke runs: initialised and saved through the trainer, no step (a step's program compiles
for ~35 s per seed on the 2-core CI: the seed is a constant of it); the training step itself
is what the training tests cover."""


def scale_type(*sizes: str, overrides: tuple[str, ...] = ("train",)) -> type:
  """A target's ``Scale`` (one per scale in its ``SCALES``): a frozen dataclass of the
  ``preset`` its runs train from, a tuple of ``--config`` overrides on it per name in
  ``overrides`` (one per kind of run), then the target's own ``sizes`` (sample counts, steps:
  ints), positional in that order."""
  return dataclasses.make_dataclass(
      "Scale", [("preset", str)] + [(name, tuple[tuple[str, object], ...]) for name in overrides]
      + [(name, int) for name in sizes], frozen=True)


CRITIC_SEED = 1000
"""The critic's seed: outside every target's seeds 0..N-1, so it never shares a run's draws."""


def critic_spec(scale: str, lighting: bool = False) -> RunSpec:
  """The independent StyleGAN2 whose discriminator scores every page's critic FD at that
  scale (shared by the targets: ``runs/<scale>/common/critic-s1000``). ``small``: the
  StyleGAN2 ``demo`` preset, 6000 steps (48 kimg); ``smoke``: ``tiny``, initialised only.
  ``lighting``: the same, trained on lit shapes scenes (``common/critic-lit-s1000``)."""
  lit = (("data.lighting", True),) if lighting else ()
  setting = "critic-lit" if lighting else "critic"
  if scale == "small":
    return RunSpec("common", setting, CRITIC_SEED, "stylegan2.py", "demo",
                   (("total_steps", 6000),) + lit)
  return RunSpec("common", setting, CRITIC_SEED, "stylegan2.py", "tiny", SMOKE_OVERRIDES + lit)


def _write_json(path: pathlib.Path, value: Any) -> None:
  tmp = path.with_name(path.name + ".tmp")
  tmp.write_text(json.dumps(value, indent=2) + "\n")
  tmp.replace(path)
