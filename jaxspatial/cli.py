"""Shared command-line plumbing: one-line user errors, progress, seed ranges.

Every ``python -m jaxspatial.<command>`` calls :func:`run` around its ``main``. A
:class:`~jaxspatial.errors.UserError` (bad path, wrong format, incompatible config) is printed as a single
``error: ...`` line on stderr with exit status 2; anything else is a bug and keeps its
traceback.

Progress (:func:`progress`, the one mechanism every long loop uses) is a tqdm bar on a
terminal and plain lines elsewhere: with output redirected to a file, piped through ``tee``,
in a CI log or a notebook a bar is off, and a run would otherwise print nothing for minutes.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import weakref
from typing import Callable, Iterable, TypeVar

from jaxspatial.errors import UserError

T = TypeVar("T")


class ArgumentParser(argparse.ArgumentParser):
  """``argparse.ArgumentParser`` whose usage errors (a missing or unparsable flag) are
  UserErrors, so they print as one ``error: ...`` line like every other bad input."""

  def error(self, message: str):
    raise UserError(f"{message} (see {self.prog} --help)")

  @classmethod
  def for_command(cls, command: str, doc: str, **kw) -> "ArgumentParser":
    """The parser of ``python -m jaxspatial.<command>``: the first paragraph of the command's
    docstring ``doc`` is the description, the rest (its examples) the epilog, kept as written."""
    description, _, epilog = doc.strip().partition("\n\n")
    return cls(prog=f"python -m jaxspatial.{command}", description=description,
               epilog=epilog or None, formatter_class=argparse.RawDescriptionHelpFormatter, **kw)

  def add_checkpoint(self, help: str) -> None:
    """``--checkpoint DIR`` (required) and ``--step N``."""
    self.add_argument("--checkpoint", required=True, help=help)
    self.add_argument("--step", type=int, help="checkpoint step (default: latest)")

  def add_edit_source(self, checkpoint_help: str, seed_help: str, latent_note: str) -> None:
    """The image an edit command starts from: ``--checkpoint``/``--step``, and ``--seed`` or a
    projection's ``--latent latent.npz`` (``latent_note``: what the projection supplies)."""
    self.add_checkpoint(checkpoint_help)
    self.add_argument("--seed", type=int, default=0, help=f"{seed_help} (default 0)")
    self.add_argument("--latent", metavar="NPZ",
                      help="edit a projected image instead: latent.npz from python -m "
                           f"jaxspatial.project ({latent_note})")


def run(main: Callable[[], object]) -> None:
  """Runs a command's ``main`` and turns :class:`UserError` into ``error: ...`` + exit 2.

  stdout is line-buffered first: redirected to a file it is block-buffered by default, and a
  command's lines ("resuming from step ...", progress lines) would reach the file only at exit.
  """
  if hasattr(sys.stdout, "reconfigure"):
    sys.stdout.reconfigure(line_buffering=True)
  try:
    main()
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)


PROGRESS_SECONDS = 30.0     # between plain progress lines (JAXSPATIAL_PROGRESS_SECONDS)


def progress_mode() -> str:
  """``"bar"`` when stdout and stderr are both terminals (nothing is redirected), ``"off"`` with
  ``JAXSPATIAL_NO_PROGRESS`` set (the tests), ``"lines"`` otherwise. Both streams count: with
  ``| tee log`` stderr is still a terminal, but a bar there would leave the log empty."""
  if os.environ.get("JAXSPATIAL_NO_PROGRESS") is not None:
    return "off"
  return "bar" if sys.stderr.isatty() and sys.stdout.isatty() else "lines"


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None,
             desc: str | None = None, unit: str = "it", enabled: bool = True,
             initial: int = 0, **kw):
  """Progress of a long loop, used like a tqdm bar (iterate it, or ``update``/``set_postfix``
  inside ``with``): a tqdm bar on stderr on a terminal, :class:`ProgressLines` on stdout
  otherwise (:func:`progress_mode`), nothing where ``enabled`` is false."""
  mode = progress_mode() if enabled else "off"
  if mode == "lines":
    return ProgressLines(iterable, total=total, desc=desc, unit=unit, initial=initial)
  from tqdm.auto import tqdm
  return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, initial=initial,
              disable=mode == "off", dynamic_ncols=True, **kw)


def _duration(seconds: float) -> str:
  """``"42s"``, ``"3m05s"``, ``"2h07m"``."""
  s = int(round(seconds))
  if s < 60:
    return f"{s}s"
  if s < 3600:
    return f"{s // 60}m{s % 60:02d}s"
  return f"{s // 3600}h{s % 3600 // 60:02d}m"


class ProgressLines:
  """A tqdm bar's stand-in where none is drawn: the calls the commands make on a bar
  (iteration, ``update``, ``set_postfix``, ``close``, ``with``) and, while it is open, one plain
  line on stdout every ``JAXSPATIAL_PROGRESS_SECONDS`` (default 30) such as
  ``train: 4000/12000 step (33%), 6.6 step/s, kimg=32.0, g_loss=1.12, 10m05s elapsed, ETA 20m``.

  A timer thread prints the lines, not ``update``: a first step that compiles for minutes, or one
  slow item, still gets its line (``JAXSPATIAL_PROGRESS_SECONDS=0``: a line at every update
  instead, from ``update`` itself). Open progresses nest (reproduce's runs around a training's
  steps); each line then shows them all, outermost first, joined by `` | ``. A progress that
  printed a line prints a last one when it closes, so a log ends with the finished count. One
  that is dropped unclosed (an exception past a bare ``progress(...)``) leaves the lines when it
  is garbage-collected: the open list holds weak references."""

  _open: list[weakref.ref] = []
  _lock = threading.Lock()
  _ticker: threading.Thread | None = None
  _last_line = 0.0
  _lines_printed = 0

  def __init__(self, iterable: Iterable[T] | None = None, *, total: int | None = None,
               desc: str | None = None, unit: str = "it", initial: int = 0):
    self.iterable = iterable
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
      total = len(iterable)
    self.total, self.desc, self.unit = total, desc or "progress", unit
    self.n = self.initial = initial
    self.postfix = ""
    self._started = time.monotonic()
    self._first: tuple[float, int] | None = None     # (time, n) after the first update
    self.closed = False
    cls = ProgressLines
    with cls._lock:
      if not cls._alive() and self._started - cls._last_line >= cls.interval():
        cls._last_line = self._started     # else the last line was recent: count from it
      cls._open.append(weakref.ref(self))
      self._lines_at_open = cls._lines_printed
      if cls._ticker is None:
        cls._ticker = threading.Thread(target=cls._tick, name="jaxspatial-progress",
                                       daemon=True)
        cls._ticker.start()

  @staticmethod
  def interval() -> float:
    """Seconds between lines (0: a line at every update); unreadable values mean the default."""
    try:
      return max(float(os.environ.get("JAXSPATIAL_PROGRESS_SECONDS", PROGRESS_SECONDS)), 0.0)
    except ValueError:
      return PROGRESS_SECONDS

  @classmethod
  def _tick(cls) -> None:
    """The timer thread: a line for the open progresses whenever ``interval`` has passed."""
    while True:
      interval = cls.interval()
      time.sleep(min(interval / 4, 1.0) or 1.0)
      with cls._lock:
        if interval and cls._alive() and time.monotonic() - cls._last_line >= interval:
          cls._print_open()

  @classmethod
  def _alive(cls) -> list["ProgressLines"]:
    """The open progresses, outermost first (the caller holds the lock)."""
    cls._open = [r for r in cls._open if r() is not None and not r().closed]
    return [r() for r in cls._open]

  @classmethod
  def _print_open(cls) -> None:
    """The line of every open progress (the caller holds the lock)."""
    cls._print(" | ".join(p.line() for p in cls._alive()))

  @classmethod
  def _print(cls, text: str) -> None:
    """One whole line on stdout (the caller holds the lock); a closed stdout (the interpreter
    shutting down under the timer thread) drops it."""
    try:
      sys.stdout.write(text + "\n")
      sys.stdout.flush()
    except (ValueError, OSError):
      return
    cls._last_line = time.monotonic()
    cls._lines_printed += 1

  def __iter__(self):
    try:
      for item in self.iterable:
        yield item
        self.update(1)
    finally:
      self.close()

  def __len__(self) -> int:
    return self.total or 0

  def __enter__(self) -> "ProgressLines":
    return self

  def __exit__(self, *exc) -> None:
    self.close()

  def update(self, n: int = 1) -> None:
    self.n += n
    if self._first is None:
      self._first = (time.monotonic(), self.n)
    if not self.interval():
      with ProgressLines._lock:
        ProgressLines._print_open()

  def set_postfix(self, ordered_dict: dict | None = None, refresh: bool = True, **kw) -> None:
    items = {**(ordered_dict or {}), **kw}
    self.postfix = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in items.items())

  def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
    self.postfix = text

  def refresh(self) -> None:
    """Nothing to redraw: lines are printed by the timer."""

  def line(self) -> str:
    """``desc: n/total unit (pct%), rate, postfix, elapsed, ETA`` (the parts that are known:
    no rate or ETA before the second update, since the first often includes compilation; no
    count for a progress that only shows its work is alive)."""
    now = time.monotonic()
    parts = []
    if self.total:
      parts.append(f"{self.n}/{self.total} {self.unit} ({100 * self.n / self.total:.0f}%)")
    elif self.n:                         # a progress without count or total: just the time
      parts.append(f"{self.n} {self.unit}")
    rate = None
    if self._first is not None and self.n > self._first[1] and now > self._first[0]:
      rate = (self.n - self._first[1]) / (now - self._first[0])
      parts.append(f"{rate:.3g} {self.unit}/s")
    if self.postfix:
      parts.append(self.postfix)
    parts.append(f"{_duration(now - self._started)} elapsed")
    if rate and self.total and self.n < self.total:
      parts.append(f"ETA {_duration((self.total - self.n) / rate)}")
    return f"{self.desc}: {', '.join(parts)}"

  def close(self) -> None:
    if self.closed:
      return
    self.closed = True
    cls = ProgressLines
    with cls._lock:
      cls._alive()
      if cls._lines_printed > self._lines_at_open:
        finished = self.total is None or self.n >= self.total
        cls._print(f"{self.line()} ({'finished' if finished else 'ended early'})")


def parse_int_ranges(text: str) -> list[int]:
  """Parses ``"0-3,7,10-11"`` into ``[0, 1, 2, 3, 7, 10, 11]``."""
  out: list[int] = []
  for part in text.split(","):
    part = part.strip()
    if not part:
      continue
    try:
      if "-" in part:
        lo, hi = part.split("-", 1)
        lo_i, hi_i = int(lo), int(hi)
        if hi_i < lo_i:
          raise UserError(f"empty range {part!r} (end before start)")
        out.extend(range(lo_i, hi_i + 1))
      else:
        out.append(int(part))
    except ValueError:
      raise UserError(f"cannot read {text!r} as integers like '0-15' or '1,4,9'") from None
  if not out:
    raise UserError(f"no integers in {text!r}")
  return out


def parse_row_col(text: str, cast: Callable[[str], T] = float, example: str = "12,20"
                  ) -> tuple[T, T]:
  """``"ROW,COL"`` (a pixel or a block) as a pair of ``cast``; UserError otherwise."""
  try:
    row, col = (cast(v) for v in text.split(","))
  except ValueError:
    raise UserError(f"cannot read {text!r}; write it as ROW,COL like {example}") from None
  return row, col


def add_finetune_args(parser, lr: float, paper_steps: int) -> None:
  """``--finetune N``, ``--finetune-lpips W`` and ``--seed`` for the regressor commands that
  end in :func:`finetune_and_inpaint` (``lr``, ``paper_steps``: the regressor's finetuning
  defaults, for the help)."""
  parser.add_argument("--seed", type=int, default=0,
                      help="seed for finetuning masks / random noise")
  parser.add_argument("--finetune", type=int, default=0, metavar="STEPS",
                      help="first finetune the regressor on this input for STEPS Adam steps "
                           f"(lr {lr}, fresh masks each step; the paper uses "
                           f"{paper_steps}); 0 = off")
  parser.add_argument("--finetune-lpips", type=float, default=1.0, metavar="W",
                      help="LPIPS weight of the finetuning loss (needs the converted lpips-vgg "
                           "weights; 0 = pixel MSE only)")


def finetune_and_inpaint(model, x, mask, args: argparse.Namespace):
  """The regressor commands' result ``G(E(x, mask))``, after ``--finetune`` steps of adapting
  ``model`` (a :class:`~jaxspatial.api.regressor.RegressorModel`) to this input when asked."""
  if args.finetune:
    model = model.finetune(x, mask, steps=args.finetune, seed=args.seed,
                           lpips_weight=args.finetune_lpips)
  return model.inpaint(x, mask, seed=args.seed)
