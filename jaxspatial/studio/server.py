"""The studio's HTTP API (Starlette): JSON in, JSON out, progress as server-sent events.

Routes (``{sid}`` is a session id from ``POST /api/session``)::

    GET  /                           the page (static/index.html; every asset ships here)
    GET  /api/models                 loaded models, the edits each offers
    POST /api/session                {"model", "seed"?} -> a new session (one per tab)
    GET  /api/s/{sid}/state          the current state
    POST /api/s/{sid}/{op}           an edit (see OPS): JSON body -> the new state
    POST /api/s/{sid}/drag|finetune|project  streamed: text/event-stream of progress, then
                                     the state
    POST /api/s/{sid}/upload         raw image bytes: a regressor source, or the photo that
                                     ``project`` then fits (StyleGAN2, SSN, SpatialGAN)
    GET  /api/s/{sid}/export.png|npz the image / its latent.npz (the format of
                                     ``python -m jaxspatial.project``, plus the settings)

Long operations stream as **server-sent events** on the response of their POST: progress only
flows server -> page, each event is one JSON line the page draws at once, and Stop is an
ordinary ``POST .../stop``; a websocket would add a second protocol (and a dependency of
uvicorn's) for no gain. Every refused request is a 4xx ``{"error": "one line"}``; the session
keeps its state.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import pathlib
import time
from typing import Any, Callable

import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from jaxspatial import imageio
from jaxspatial.cli import UserError
from jaxspatial.studio import ops
from jaxspatial.studio.engines import Engine
from jaxspatial.studio.sessions import Busy, Session, SessionStore

STATIC = pathlib.Path(__file__).parent / "static"
log = logging.getLogger("jaxspatial.studio")


class ApiError(Exception):
  """A refused request: HTTP ``status`` and a one-line reason."""

  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status = status


def png(image: np.ndarray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(imageio.to_uint8(image)).save(buf, format="PNG")
  return buf.getvalue()


def data_url(image: np.ndarray) -> str:
  return "data:image/png;base64," + base64.b64encode(png(image)).decode()


def payload(session: Session, ms: float | None = None) -> dict[str, Any]:
  """The state as the page draws it."""
  s, engine = session.state, session.engine
  out = {"sid": session.sid, "model": engine.name, "kind": engine.kind,
         "image": data_url(s.image), "seed": s.seed, "truncation": s.truncation,
         "noise": s.noise, "edit": s.edit, "history": [h.edit for h in session.history],
         "index": session.index, "overlay": engine.overlay(s) if s.ws is not None else {},
         "candidates": [data_url(c.image) for c in session.candidates],
         "tuned": session.tuned is not None, "photo": session.target is not None}
  if s.sources:
    out["sources"] = [data_url(x) for x in s.sources]
    out["masks"] = [data_url(np.repeat(m, 3, -1) * 2 - 1) for m in s.masks]
  if session.notice:
    out["notice"] = session.notice
  if ms is not None:
    out["ms"] = round(ms, 2)
  return out


class Studio:
  """The app's state: engines by name, the session store, the optional ``--out`` folder."""

  def __init__(self, engines: list[Engine], store: SessionStore | None = None,
               out: pathlib.Path | None = None):
    if not engines:
      raise UserError("the studio needs at least one --checkpoint")
    names = [e.name for e in engines]
    for i, e in enumerate(engines):          # the same directory name twice: number them
      if names.count(e.name) > 1:
        e.name = f"{e.name}-{i}"
    self.engines = {e.name: e for e in engines}
    self.store = store if store is not None else SessionStore()
    self.out = out

  def session(self, request: Request) -> Session:
    session = self.store.get(request.path_params["sid"])
    if session is None:
      raise ApiError(404, "unknown or expired session; reload the page")
    return session


def _json_error(status: int, message: str) -> JSONResponse:
  return JSONResponse({"error": message}, status_code=status)


def guarded(fn: Callable) -> Callable:
  """Turns refusals into 4xx JSON (and bugs into a one-line 500, logged with traceback)."""
  async def endpoint(request: Request) -> Response:
    try:
      return await fn(request)
    except ApiError as e:
      return _json_error(e.status, str(e))
    except UserError as e:
      return _json_error(400, str(e))
    except Busy as e:
      return _json_error(409, str(e))
    except Exception as e:  # noqa: BLE001 -- the page gets one line, the log the traceback
      log.exception("internal error in %s", request.url.path)
      return _json_error(500, f"internal error: {type(e).__name__}: {e}")
  return endpoint


async def body_json(request: Request) -> dict[str, Any]:
  raw = await request.body()
  if len(raw) > ops.MAX_JSON_BYTES:
    raise ApiError(413, f"request body over {ops.MAX_JSON_BYTES} bytes")
  if not raw:
    return {}
  try:
    body = json.loads(raw)
  except ValueError:
    raise ApiError(400, "request body is not JSON") from None
  if not isinstance(body, dict):
    raise ApiError(400, "request body must be a JSON object")
  return body


def sse(event: dict[str, Any]) -> bytes:
  return f"data: {json.dumps(event)}\n\n".encode()


def run_edit(studio: Studio, session: Session, op: str, body: Any) -> dict[str, Any]:
  """One plain edit under the session's lock -> the new state's payload (with its latency)."""
  with session.editing():
    start = time.perf_counter()
    ops.check_kind(session.engine, op)
    session.notice = None
    new = ops.OPS[op](session, body, studio)
    if new is not None:
      session.push(new)
    return payload(session, (time.perf_counter() - start) * 1e3)


async def streamed(request: Request, session: Session, op: str) -> StreamingResponse:
  """A long edit (``ops.STREAMED``) as server-sent events; the session is held until it ends."""
  body = await body_json(request)
  ops.check_kind(session.engine, op)
  session.acquire()
  session.stop.clear()
  try:
    events = ops.STREAMED[op](session, body)
    first = await run_in_threadpool(next, events)   # input errors surface here, as 4xx
  except BaseException:
    session.release()
    raise

  def stream():
    try:
      yield sse(first)
      for event in events:
        if event.get("type") == "done":
          event["state"] = payload(session)
        yield sse(event)
    except (UserError, ValueError) as e:
      yield sse({"type": "error", "error": str(e)})
    finally:
      session.release()
  return StreamingResponse(stream(), media_type="text/event-stream",
                           headers={"Cache-Control": "no-store"})


async def export_response(session: Session, fmt: str) -> Response:
  """The current image as PNG, or its latent as ``latent.npz``."""
  if fmt == "png":
    return Response(png(session.state.image), media_type="image/png",
                    headers={"Content-Disposition": 'attachment; filename="studio.png"'})
  if fmt == "npz":
    arrays = await run_in_threadpool(session.engine.export, session.state)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return Response(buf.getvalue(), media_type="application/octet-stream",
                    headers={"Content-Disposition": 'attachment; filename="latent.npz"'})
  raise ApiError(404, f"export is .png or .npz, not .{fmt}")


def create_app(studio: Studio) -> Starlette:
  """The Starlette app serving ``studio``."""

  async def index(request):
    return FileResponse(STATIC / "index.html")

  async def models(request):
    return JSONResponse({"ready": True, "models": [e.describe() for e in studio.engines.values()],
                         "save": studio.out is not None})

  async def new_session(request):
    body = await body_json(request)
    name = body.get("model", next(iter(studio.engines)))
    if name not in studio.engines:
      raise ApiError(404, f"no model named {name!r} (loaded: {', '.join(studio.engines)})")
    seed = ops.integer(body, "seed", 0, 0, 2 ** 31 - 1)
    engine = studio.engines[name]
    state = await run_in_threadpool(engine.new, seed)
    return JSONResponse(payload(studio.store.create(engine, state)))

  async def state(request):
    return JSONResponse(payload(studio.session(request)))

  async def edit(request):
    session = studio.session(request)
    op = request.path_params["op"]
    if op == "stop":                      # needs no lock: it interrupts the edit holding it
      session.stop.set()
      return JSONResponse({"stopped": True})
    if op in ops.STREAMED:
      return await streamed(request, session, op)
    if op not in ops.OPS:
      raise ApiError(404, f"unknown edit {op!r}")
    body = await request.body() if op == "upload" else await body_json(request)
    if op == "upload" and len(body) > ops.MAX_UPLOAD_BYTES:
      raise ApiError(413, f"upload over {ops.MAX_UPLOAD_BYTES // 2 ** 20} MiB")
    return JSONResponse(await run_in_threadpool(run_edit, studio, session, op, body))

  async def export(request):
    return await export_response(studio.session(request), request.path_params["fmt"])

  routes = [
      Route("/", guarded(index)),
      Route("/api/models", guarded(models)),
      Route("/api/session", guarded(new_session), methods=["POST"]),
      Route("/api/s/{sid}/state", guarded(state)),
      Route("/api/s/{sid}/export.{fmt}", guarded(export)),
      Route("/api/s/{sid}/{op}", guarded(edit), methods=["POST"]),
      Mount("/static", StaticFiles(directory=STATIC), name="static"),
  ]
  return Starlette(routes=routes)
