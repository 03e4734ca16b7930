"""Per-tab sessions: an undo/redo history of :class:`~jaxspatial.studio.engines.State` s.

Every browser tab opens its own :class:`Session` (the page keeps the id in
``sessionStorage``, which is per tab). Memory is bounded twice: a session keeps at most
``max_history`` states (the oldest are dropped), and the :class:`SessionStore` keeps at most
``max_sessions`` sessions (the least recently used is evicted). A session serialises its own
edits with a non-blocking lock -- a second edit while one runs (say, during a drag) is refused
with "busy" instead of interleaving -- while different sessions edit concurrently; states are
immutable, so a reader never sees half an edit.
"""

from __future__ import annotations

import collections
import contextlib
import secrets
import threading
import time
from typing import Any, Iterator

from jaxspatial.studio.engines import Engine, State


class Busy(Exception):
  """The session is running another edit."""


class Session:
  """One tab's model, history and transient data (SSN candidates, a finetuned regressor, an
  uploaded photo to project)."""

  def __init__(self, sid: str, engine: Engine, state: State, max_history: int):
    self.sid, self.engine, self.max_history = sid, engine, max_history
    self.history: list[State] = [state]
    self.index = 0
    self.candidates: list[State] = []
    self.tuned: Any = None               # regressor finetuned on this session's collage
    self.target: Any = None              # the uploaded photo (R, R, 3) a projection fits
    self.notice: str | None = None       # what the last upload's resizing did, for the page
    self.stop = threading.Event()        # set by the Stop button of a drag / finetune
    self.last_used = time.monotonic()
    self._lock = threading.Lock()

  @property
  def state(self) -> State:
    return self.history[self.index]

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
    del self.history[self.index + 1:]
    self.history.append(state)
    del self.history[:max(0, len(self.history) - self.max_history)]
    self.index = len(self.history) - 1
    return state

  def undo(self) -> State:
    self.index = max(0, self.index - 1)
    return self.state

  def redo(self) -> State:
    self.index = min(len(self.history) - 1, self.index + 1)
    return self.state

  def reset(self) -> State:
    """Back to the first state still in the history (itself an undoable step)."""
    return self.push(self.history[0].replace(edit="reset"))


class SessionStore:
  """Sessions by id, least recently used evicted beyond ``max_sessions``; thread-safe."""

  def __init__(self, max_sessions: int = 16, max_history: int = 50):
    self.max_sessions, self.max_history = max_sessions, max_history
    self._sessions: collections.OrderedDict[str, Session] = collections.OrderedDict()
    self._lock = threading.Lock()

  def create(self, engine: Engine, state: State) -> Session:
    session = Session(secrets.token_urlsafe(12), engine, state, self.max_history)
    with self._lock:
      self._sessions[session.sid] = session
      while len(self._sessions) > self.max_sessions:
        self._sessions.popitem(last=False)
    return session

  def get(self, sid: str) -> Session | None:
    with self._lock:
      session = self._sessions.get(sid)
      if session is not None:
        self._sessions.move_to_end(sid)
      return session

  def __len__(self) -> int:
    return len(self._sessions)
