"""Guarding a training workdir against the faults of long runs.

* :class:`Lock` -- one ``train`` per workdir. Process 0 holds an exclusive ``fcntl.flock`` on
  ``WORKDIR/train.lock`` for the whole run; the kernel drops it when the process dies, however it
  dies (SIGKILL, OOM, a lost machine's NFS lease), so a crashed run never leaves it stale. The
  file keeps the holder's pid, host and start time for the refusal message. In a multi-process
  run only process 0 takes it (every process sees the same workdir); when it refuses, the others
  stop with the distributed runtime's shutdown (no device collective is spent on the lock). On
  file systems without locks (some FUSE mounts) ``flock``
  succeeds vacuously: the guard is then off.
* :func:`restore_newest_intact` -- resume from the newest checkpoint that restores. A damaged
  step (a file missing or truncated, as a half-synced copy leaves it) is moved to
  ``WORKDIR/damaged_checkpoints/`` (nothing is deleted) and named in one line. Steps are only
  judged damaged when an older one restores: if none does, the run stops with the first error and
  moves nothing (a changed ``config.model`` fails every step alike; that is not damage).
* :func:`full_disk_is_a_user_error` -- a full disk (ENOSPC anywhere in the run: checkpoint,
  metrics, samples) is one ``error:`` line saying which checkpoints are intact; Orbax commits a
  step by renaming its finished temporary directory, so those are whole, and re-running the same
  command after freeing space resumes from the newest.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import pathlib
import shutil
import socket
import time
from typing import Any, Callable, Iterator

import jax

from jaxspatial.errors import UserError

LOCK_FILE = "train.lock"
DAMAGED = "damaged_checkpoints"


class Lock:
  """Exclusive hold of a workdir for one training run (a context manager)."""

  def __init__(self, workdir: str | pathlib.Path):
    self.path = pathlib.Path(workdir) / LOCK_FILE
    self._file = None

  def __enter__(self) -> "Lock":
    refusal = self._acquire() if jax.process_index() == 0 else ""
    if refusal:
      self.__exit__()
      raise UserError(refusal)
    return self

  def _acquire(self) -> str:
    """Takes the lock; returns '' or the reason it is held elsewhere."""
    self.path.parent.mkdir(parents=True, exist_ok=True)
    f = open(self.path, "a+")
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      f.seek(0)
      holder = f.read().strip() or "{}"
      f.close()
      try:
        h = json.loads(holder)
        who = f" (pid {h['pid']} on {h['host']}, since {h['started']})"
      except (ValueError, KeyError, TypeError):
        who = ""
      return (f"{self.path.parent} is in use by another train run{who}; wait for it to end or "
              "stop it (its lock is released when it exits, even by a crash)")
    f.seek(0)
    f.truncate()
    f.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}) + "\n")
    f.flush()
    self._file = f
    return ""

  def __exit__(self, *exc) -> None:
    if self._file is not None:
      fcntl.flock(self._file, fcntl.LOCK_UN)
      self._file.close()
      self._file = None


def restore_newest_intact(trainer, workdir: pathlib.Path, make_manager: Callable[[], Any],
                          log: Callable[[str], None] = print) -> tuple[Any, int | None, Any]:
  """``(manager, step, data_state)`` after restoring the newest restorable step into
  ``trainer`` (``step`` None: nothing saved yet). Damaged newer steps are moved aside."""
  mngr = make_manager()
  damaged: list[tuple[int, str]] = []
  for step in sorted(mngr.all_steps(), reverse=True):
    try:
      data_state = trainer.restore(mngr, step)
    except Exception as e:  # noqa: BLE001 -- a damaged checkpoint fails in many ways
      damaged.append((step, f"{type(e).__name__}: {_first_line(e)}"))
      continue
    if not damaged:
      return mngr, step, data_state
    mngr.close()
    moved = _move_aside(workdir, [s for s, _ in damaged])
    if jax.process_index() == 0:
      steps = ", ".join(str(s) for s, _ in damaged)
      log(f"checkpoint step {steps} in {mngr.directory} cannot be restored ({damaged[0][1]}); "
          f"moved to {moved}, resuming from step {step}")
    return make_manager(), step, data_state
  if damaged:
    step, reason = damaged[0]
    raise UserError(f"no checkpoint in {mngr.directory} can be restored (step {step}: {reason})")
  return mngr, None, None


def _move_aside(workdir: pathlib.Path, steps: list[int]) -> pathlib.Path:
  """Moves ``checkpoints/<step>`` to ``damaged_checkpoints/<step>[.k]`` (process 0; all wait)."""
  target = workdir / DAMAGED
  if jax.process_index() == 0:
    target.mkdir(exist_ok=True)
    for step in steps:
      dest, k = target / str(step), 1
      while dest.exists():
        dest, k = target / f"{step}.{k}", k + 1
      shutil.move(str(workdir / "checkpoints" / str(step)), dest)
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils
    multihost_utils.sync_global_devices("jaxspatial: damaged checkpoints moved")
  return target


def _first_line(e: BaseException) -> str:
  return (str(e).strip().splitlines() or [""])[0][:300]


def _is_disk_full(e: BaseException) -> bool:
  """ENOSPC anywhere in ``e``'s chain (Orbax re-raises its writers' errors; tensorstore's
  carry the text only)."""
  seen = set()
  while e is not None and id(e) not in seen:
    seen.add(id(e))
    if isinstance(e, OSError) and e.errno == errno.ENOSPC:
      return True
    if "No space left on device" in str(e):
      return True
    if isinstance(e, BaseExceptionGroup) and any(_is_disk_full(x) for x in e.exceptions):
      return True
    e = e.__cause__ or e.__context__
  return False


@contextlib.contextmanager
def full_disk_is_a_user_error(workdir: pathlib.Path) -> Iterator[None]:
  """Turns a full disk during the run into one line naming the intact checkpoints."""
  try:
    yield
  except Exception as e:
    if not _is_disk_full(e):
      raise
    root = workdir / "checkpoints"
    steps = sorted(int(p.name) for p in root.glob("*") if p.name.isdigit())
    intact = f"checkpoints {steps} in {root} are intact" if steps else "no checkpoint was saved"
    raise UserError(f"no space left on device while training in {workdir} ({_first_line(e)}); "
                    f"{intact}: free space and re-run the same command to resume") from None
