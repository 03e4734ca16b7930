"""Per-tab sessions: an undo/redo history of :class:`~jaxspatial.studio.engines.State` s.

Every browser tab opens its own :class:`Session` (the page keeps the id in
``sessionStorage``, which is per tab). Memory is bounded in bytes, not only in counts: a state
of a 1024-px model (its image, W+, noise maps) is ~100 times one of a 32-px model, so 16 tabs of
50 float32 states were 19 GB there. A history keeps its images as uint8 (what the page is sent
anyway; edits read the latents, never the image), keeps at most ``max_history`` states, and
the :class:`SessionStore` keeps at most ``max_sessions`` sessions and ``max_bytes`` bytes: after
each edit it drops the oldest undo steps of the largest sessions, then whole least recently
used sessions, until everything fits -- the number of undo steps a budget holds thus scales
with the model's size by itself. A session serialises its own edits with a non-blocking lock
-- a second edit while one runs (say, during a drag) is refused with "busy" instead of
interleaving -- while different sessions edit concurrently; states are immutable and a
history is replaced, never changed in place, so a reader never sees half an edit.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import secrets
import threading
import time
from typing import Any, Iterator

import jax
import numpy as np

from jaxspatial import imageio
from jaxspatial.studio.engines import Engine, State


class Busy(Exception):
  """The session is running another edit."""


def stored(state: State) -> State:
  """``state`` as a history keeps it: its image as uint8 (a quarter of float32's bytes)."""
  if state.image.dtype == np.uint8:
    return state
  return state.replace(image=imageio.to_uint8(state.image))


def _arrays(*values: Any) -> Iterator[Any]:
  for v in jax.tree_util.tree_leaves([
      [getattr(x, f.name) for f in dataclasses.fields(x)] if isinstance(x, State) else x
      for x in values]):
    if hasattr(v, "nbytes") and hasattr(v, "shape"):
      yield v


class Session:
  """One tab's model, history and transient data (SSN candidates, a finetuned regressor, an
  uploaded photo to project)."""

  def __init__(self, sid: str, engine: Engine, state: State, max_history: int):
    self.sid, self.engine, self.max_history = sid, engine, max_history
    self._view: tuple[tuple[State, ...], int] = ((stored(state),), 0)   # (history, index)
    self.candidates: list[State] = []
    self.tuned: Any = None               # regressor finetuned on this session's collage
    self.target: Any = None              # the uploaded photo (R, R, 3) a projection fits
    self.notice: str | None = None       # what the last upload's resizing did, for the page
    self.stop = threading.Event()        # set by the Stop button of a drag / finetune
    self.last_used = time.monotonic()
    self.nbytes = 0                      # as last measured by :meth:`measure`
    self._arrays: dict[int, tuple[State, list]] = {}   # id(state) -> (state, its arrays)
    self._lock = threading.Lock()

  @property
  def history(self) -> tuple[State, ...]:
    return self._view[0]

  @property
  def index(self) -> int:
    return self._view[1]

  @property
  def state(self) -> State:
    history, index = self._view
    return history[index]

  def acquire(self) -> None:
    """Holds this session for one edit; :class:`Busy` if another edit holds it."""
    if not self._lock.acquire(blocking=False):
      raise Busy("this session is busy with another edit (stop it first)")
    self.last_used = time.monotonic()

  def release(self) -> None:
    self._lock.release()

  @contextlib.contextmanager
  def editing(self) -> Iterator["Session"]:
    """:meth:`acquire` ... :meth:`release` around a block."""
    self.acquire()
    try:
      yield self
    finally:
      self.release()

  def push(self, state: State) -> State:
    """Makes ``state`` current; drops the redo branch and states beyond ``max_history``."""
    state = stored(state)
    history, index = self._view
    history = (*history[:index + 1], state)[-self.max_history:]
    self._view = (history, len(history) - 1)
    return state

  def undo(self) -> State:
    history, index = self._view
    self._view = (history, max(0, index - 1))
    return self.state

  def redo(self) -> State:
    history, index = self._view
    self._view = (history, min(len(history) - 1, index + 1))
    return self.state

  def reset(self) -> State:
    """Back to the first state still in the history (itself an undoable step)."""
    return self.push(self.history[0].replace(edit="reset"))

  def drop_oldest(self) -> bool:
    """Forgets the oldest undo step (never the current state); False if there is none."""
    history, index = self._view
    if index == 0:
      return False
    self._view = (history[1:], index - 1)
    return True

  def measure(self) -> int:
    """The bytes of every array this session holds (each once; the engine's shared arrays
    not at all) -> ``self.nbytes``."""
    shared = {id(a) for a in self.engine.shared_arrays()}
    cached, self._arrays = self._arrays, {}
    for state in self.history:         # after each edit: one new state to walk, not fifty
      # (the cache holds its states, so no id is reused while it is there)
      self._arrays[id(state)] = cached.get(id(state)) or (state, list(_arrays(state)))
    seen: dict[int, int] = {}
    for arrays in (*(arrays for _, arrays in self._arrays.values()),
                   list(_arrays(*self.candidates, self.target, self.tuned))):
      for a in arrays:
        if id(a) not in shared:
          seen[id(a)] = int(a.nbytes)
    self.nbytes = sum(seen.values())
    return self.nbytes


class SessionStore:
  """Sessions by id within ``max_sessions`` and ``max_bytes`` (see the module docstring);
  thread-safe."""

  def __init__(self, max_sessions: int = 16, max_history: int = 50, max_bytes: int = 2 ** 30):
    self.max_sessions, self.max_history, self.max_bytes = max_sessions, max_history, max_bytes
    self._sessions: collections.OrderedDict[str, Session] = collections.OrderedDict()
    self._lock = threading.Lock()

  def create(self, engine: Engine, state: State) -> Session:
    session = Session(secrets.token_urlsafe(12), engine, state, self.max_history)
    with self._lock:
      self._sessions[session.sid] = session
      while len(self._sessions) > self.max_sessions:
        self._sessions.popitem(last=False)
    self.fit(session)
    return session

  def get(self, sid: str) -> Session | None:
    with self._lock:
      session = self._sessions.get(sid)
      if session is not None:
        self._sessions.move_to_end(sid)
      return session

  def nbytes(self) -> int:
    return sum(s.nbytes for s in list(self._sessions.values()))

  def fit(self, current: Session) -> None:
    """After an edit of ``current`` (whose lock the caller holds): measure it, then drop the
    oldest undo step of the largest session (another only while its lock is free: its own
    edit may be reading its history) until the budget holds, then whole least recently used
    sessions; ``current``'s present state always stays."""
    current.measure()
    with self._lock:
      while self.nbytes() > self.max_bytes:
        for s in sorted(self._sessions.values(), key=lambda s: -s.nbytes):
          if s is current:
            dropped = s.drop_oldest()
          elif s._lock.acquire(blocking=False):
            try:
              dropped = s.drop_oldest()
            finally:
              s._lock.release()
          else:
            dropped = False
          if dropped:
            s.measure()
            break
        else:
          victim = next((s for s in self._sessions.values() if s is not current), None)
          if victim is None:
            return
          del self._sessions[victim.sid]

  def __len__(self) -> int:
    return len(self._sessions)
