"""The studio's HTTP API (Starlette): JSON in, JSON out, progress as server-sent events.

Routes (``{sid}`` is a session id from ``POST /api/session``)::

    GET  /                           the page (static/index.html; every asset ships here)
    GET  /api/models                 loaded models, the edits each offers
    POST /api/session                {"model", "seed"?} -> a new session (one per tab)
    GET  /api/s/{sid}/state          the current state
    POST /api/s/{sid}/{op}           an edit (see OPS): JSON body -> the new state
    POST /api/s/{sid}/drag|finetune|project  streamed: text/event-stream of progress, then
                                     the state (a drag's with its report, ``ops.drag_report``)
    POST /api/s/{sid}/upload         raw image bytes (PNG, JPEG or WebP): a regressor source, or
                                     the photo that ``project`` then fits (StyleGAN2, SSN,
                                     SpatialGAN)
    GET  /api/s/{sid}/export.png|npz the image / its latent.npz (the format of
                                     ``python -m jaxspatial.project``, plus the settings)
    GET  /api/s/{sid}/photo.png      the uploaded photo as the projection fits it (cropped,
                                     resized), shown beside its projection

Long operations stream as **server-sent events** on the response of their POST: progress only
flows server -> page, each event is one JSON line the page draws at once, and Stop is an
ordinary ``POST .../stop``; a websocket would add a second protocol (and a dependency of
uvicorn's) for no gain. Every refused request is a 4xx ``{"error": "one line"}``; the session
keeps its state; a bug is a 500 that says "internal error" and nothing more (the traceback goes
to the log, not to whoever sent the request).

**Access** (docs/reliability.md, "studio"): the studio is a local web app, so the threat is
every other page the user's browser opens. :class:`Guard` (an ASGI middleware in front of every
route, the page and its assets included) answers only requests that carry the launch token
(``?token=`` on the page URL, which it then keeps in a ``SameSite=Strict`` cookie, or the header
``X-Studio-Token``), name a local Host (or ``--host``; a DNS-rebinding page names its own), and,
unless they are GET, come from the studio's own Origin -- a cookie-authenticated request must
show its Origin, a script's header token needs none (no other page can set that header without
a CORS preflight, which the studio never grants). It also counts every request body against its
route's limit, on ``Content-Length`` and while it streams in, and sets a Content-Security-Policy
that forbids framing, foreign scripts and HTML-string sinks (Trusted Types).
"""

from __future__ import annotations

import asyncio
import http.cookies
import io
import json
import logging
import pathlib
import re
import secrets
import time
from typing import Any, Callable, Iterator
from urllib.parse import parse_qsl

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from jaxspatial.errors import UserError
from jaxspatial.studio import ops
from jaxspatial.studio.engines import Engine
from jaxspatial.studio.ops import data_url, png
from jaxspatial.studio.sessions import Busy, Session, SessionStore

STATIC = pathlib.Path(__file__).parent / "static"
log = logging.getLogger("jaxspatial.studio")

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
TOKEN_HEADER = "x-studio-token"
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9_-]{8,128}")
MAX_CONNECTIONS = 64        # uvicorn's limit_concurrency: more open connections get a 503
SMALL_BODY = 64 * 2 ** 10   # routes whose JSON carries no image
IMAGE_JSON_BODY = 8 * 2 ** 20   # routes whose JSON carries masks as PNG data URLs
IMAGE_ROUTES = {"composite": IMAGE_JSON_BODY, "drag": IMAGE_JSON_BODY,
                "upload": ops.MAX_UPLOAD_BYTES}
MAX_JSON_CONTAINERS = 4096  # arrays + objects in one body: a grid of SSN blocks needs ~260
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; "
       "require-trusted-types-for 'script'; trusted-types 'none'")
SECURITY_HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
                    (b"cache-control", b"no-store")]


class ApiError(Exception):
  """A refused request: HTTP ``status`` and a one-line reason."""

  def __init__(self, status: int, message: str):
    super().__init__(message)
    self.status = status


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


def check_token(token: str) -> str:
  if not TOKEN_PATTERN.fullmatch(token):
    raise UserError("--token must be 8 to 128 letters, digits, '-' or '_' (it goes in a URL)")
  return token


class Studio:
  """The app's state: engines by name, the session store, the optional ``--out`` folder (with
  its limits), and the access rules: the launch ``token`` (random unless given) and the
  ``hosts`` a request's Host header may name (the local names and ``host``)."""

  def __init__(self, engines: list[Engine], store: SessionStore | None = None,
               out: pathlib.Path | None = None, *, token: str | None = None,
               host: str = "127.0.0.1", max_saves: int = 1000, max_save_bytes: int = 2 ** 30):
    if not engines:
      raise UserError("the studio needs at least one --checkpoint")
    names = [e.name for e in engines]
    for i, e in enumerate(engines):          # the same directory name twice: number them
      if names.count(e.name) > 1:
        e.name = f"{e.name}-{i}"
    self.engines = {e.name: e for e in engines}
    self.store = store if store is not None else SessionStore()
    self.out = out
    self.max_saves, self.max_save_bytes = max_saves, max_save_bytes
    self.token = check_token(token) if token is not None else secrets.token_urlsafe(24)
    self.hosts = frozenset((*LOCAL_HOSTS, host.strip("[]").lower()))

  def session(self, request: Request) -> Session:
    session = self.store.get(request.path_params["sid"])
    if session is None:
      raise ApiError(404, "unknown or expired session; reload the page")
    return session


def _json_error(status: int, message: str) -> JSONResponse:
  """The refusal; a 413 also closes the connection, so that no more of the body is read."""
  return JSONResponse({"error": message}, status_code=status,
                      headers={"Connection": "close"} if status == 413 else None)


def guarded(fn: Callable) -> Callable:
  """Turns refusals into 4xx JSON, and bugs into a 500 that says only "internal error" (the
  traceback goes to the log: a request must not learn the server's internals)."""
  async def endpoint(request: Request) -> Response:
    try:
      return await fn(request)
    except ApiError as e:
      return _json_error(e.status, str(e))
    except UserError as e:
      return _json_error(400, str(e))
    except Busy as e:
      return _json_error(409, str(e))
    except Exception:  # noqa: BLE001 -- the page gets one line, the log the traceback
      log.exception("internal error in %s", request.url.path)
      return _json_error(500, "internal error")
  return endpoint


# ---------------------------------------------------------------------------- access


def _host_name(host_header: str) -> str:
  """``127.0.0.1:7860`` -> ``127.0.0.1``; ``[::1]:7860`` -> ``::1``."""
  if host_header.startswith("["):
    return host_header[1:].split("]", 1)[0].lower()
  return host_header.rsplit(":", 1)[0].lower() if host_header.count(":") == 1 else \
      host_header.lower()


def body_limit(path: str) -> int:
  """The most bytes a request to ``path`` may send: large only where an image travels."""
  op = path.rstrip("/").rsplit("/", 1)[-1]
  return IMAGE_ROUTES.get(op, SMALL_BODY) if path.startswith("/api/s/") else SMALL_BODY


class BodyTooLarge(Exception):
  """A request body went over its route's limit while it streamed in."""


class Guard:
  """The access rules and body limits in front of the whole app (see the module docstring).
  Every answer, refusals included, carries :data:`SECURITY_HEADERS`."""

  def __init__(self, app, studio: Studio):
    self.app, self.studio = app, studio

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)

    async def secured_send(message):
      if message["type"] == "http.response.start":
        message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
      await send(message)
    refusal = self.refusal(scope)
    if refusal is not None:
      return await _json_error(*refusal)(scope, receive, secured_send)
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    limit = body_limit(scope["path"])
    length = headers.get("content-length", "0")
    if not length.isdigit():
      return await _json_error(400, "bad Content-Length")(scope, receive, secured_send)
    if int(length) > limit:
      return await _json_error(413, f"request body over {limit} bytes")(
          scope, receive, secured_send)
    received = 0

    async def counted_receive():     # the endpoints' read_body turns its raise into a 413
      nonlocal received
      message = await receive()
      if message["type"] == "http.request":
        received += len(message.get("body", b""))
        if received > limit:
          raise BodyTooLarge(limit)
      return message
    await self.app(scope, counted_receive, secured_send)

  def refusal(self, scope) -> tuple[int, str] | None:
    """``(status, reason)`` if the request breaks an access rule, else None."""
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
    host = headers.get("host", "")
    if _host_name(host) not in self.studio.hosts:
      return 403, f"Host {host[:100]!r} is not this studio's (DNS rebinding?)"
    given, via_header = self.token_of(scope, headers)
    if given is None or not secrets.compare_digest(given.encode(), self.studio.token.encode()):
      return 403, ("missing or wrong studio token: open the URL the studio printed "
                   "(http://.../?token=...)")
    if scope["method"] not in ("GET", "HEAD"):
      origin = headers.get("origin")
      if origin is None and not via_header:
        return 403, "a request authenticated by cookie must show its Origin"
      if origin is not None and origin != f"http://{host}":
        return 403, f"cross-origin request refused (Origin {origin[:100]!r})"
    return None

  def token_of(self, scope, headers: dict[str, str]) -> tuple[str | None, bool]:
    """The request's token and whether it came in the header (else: query or cookie)."""
    if TOKEN_HEADER in headers:
      return headers[TOKEN_HEADER], True
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
    if "token" in query:
      return query["token"], False
    cookies = http.cookies.SimpleCookie()
    try:
      cookies.load(headers.get("cookie", ""))
    except http.cookies.CookieError:
      return None, False
    morsel = cookies.get(cookie_name(scope))
    return (morsel.value if morsel is not None else None), False


def cookie_name(scope) -> str:
  """Per port: two studios on one machine (same host, other ports) share cookies otherwise."""
  server = scope.get("server") or ("", 0)
  return f"jaxspatial-studio-{server[1]}"


async def read_body(request: Request) -> bytes:
  """The body, refused (413) past its route's limit as it streams in (:class:`Guard`)."""
  try:
    return await request.body()
  except BodyTooLarge as e:
    raise ApiError(413, f"request body over {e.args[0]} bytes") from None


async def body_json(request: Request) -> dict[str, Any]:
  """The request's JSON object; only ``application/json`` is read (a cross-site form or a
  "simple" text/plain request cannot send that type without a preflight)."""
  ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
  if ctype != "application/json":
    raise ApiError(415, f"send the body as application/json, not {ctype[:60] or 'nothing'}")
  raw = await read_body(request)
  if not raw:
    return {}
  containers = raw.count(b"[") + raw.count(b"{")   # a C scan: milliseconds for 8 MiB
  if containers > MAX_JSON_CONTAINERS:             # json.loads of 1.3 M pairs took seconds
    raise ApiError(400, f"request body has {containers} JSON arrays/objects; at most "
                        f"{MAX_JSON_CONTAINERS}")
  try:
    body = json.loads(raw)
  except RecursionError:
    raise ApiError(400, "request body is nested too deeply") from None
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
    studio.store.fit(session)
    return payload(session, (time.perf_counter() - start) * 1e3)


class EventStream:
  """A streamed edit's events as server-sent events, holding ``session`` until it ends.

  Starlette's StreamingResponse notices a client that went away only when a write fails, and
  uvicorn drops writes to a closed connection silently, so a drag whose tab closed ran to its
  end and its lock was freed only when garbage collection closed the generator (the tab got
  409 "busy" for a minute). Here a watcher reads ``http.disconnect`` and ends the loop after the
  step in flight; ``finally`` closes the event generator (a threaded projection or finetuning
  stops its worker and waits for it: one step) and releases the session. The abandoned edit
  leaves no state: it is pushed only by the generator's last step, which never runs.
  """

  def __init__(self, store: SessionStore, session: Session, first: dict,
               events: Iterator[dict], start: float):
    self.store, self.session, self.first, self.events = store, session, first, events
    self.start = start                   # the done state's "ms": the whole edit's latency
    if first.get("type") == "done":      # e.g. a drag whose handles already sit on targets
      first["state"] = payload(session, (time.perf_counter() - start) * 1e3)

  def _next(self) -> dict | None:
    """The next event as the page gets it (None at the end); errors become an error event."""
    try:
      event = next(self.events)
    except StopIteration:
      return None
    except (UserError, ValueError) as e:
      return {"type": "error", "error": str(e), "last": True}
    except Exception:  # noqa: BLE001 -- the page gets one line, the log the traceback
      log.exception("internal error in a streamed %s", self.session.engine.name)
      return {"type": "error", "error": "internal error", "last": True}
    if event.get("type") == "done":
      event["state"] = payload(self.session, (time.perf_counter() - self.start) * 1e3)
    return event

  async def _finish(self) -> None:
    """Closes the events, fits the store's budget, releases the session (once)."""
    if self.events is None:
      return
    events, self.events = self.events, None
    try:
      await run_in_threadpool(events.close)
      self.store.fit(self.session)
    finally:
      self.session.release()

  async def __call__(self, scope, receive, send):
    gone = asyncio.Event()

    async def watch():
      while (await receive())["type"] != "http.disconnect":
        pass
      gone.set()
    watcher = asyncio.ensure_future(watch())
    try:
      await send({"type": "http.response.start", "status": 200,
                  "headers": [(b"content-type", b"text/event-stream; charset=utf-8")]})
      event = self.first
      while event is not None and not gone.is_set():
        last = event.pop("last", False) or event.get("type") == "done"
        if last:                 # free the tab before it hears the end and sends its next edit
          await self._finish()
        await send({"type": "http.response.body", "body": sse(event), "more_body": True})
        event = None if last else await run_in_threadpool(self._next)
      await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
      watcher.cancel()
      await self._finish()


async def streamed(request: Request, studio: Studio, session: Session,
                   op: str) -> EventStream:
  """A long edit (``ops.STREAMED``) as server-sent events; the session is held until it ends."""
  body = await body_json(request)
  ops.check_kind(session.engine, op)
  session.acquire()
  session.stop.clear()
  start = time.perf_counter()
  try:
    events = ops.STREAMED[op](session, body)
    first = await run_in_threadpool(next, events)   # input errors surface here, as 4xx
  except BaseException:
    session.release()
    raise
  return EventStream(studio.store, session, first, events, start)


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
  raise ApiError(404, f"export is .png or .npz, not .{fmt[:20]}")


UPLOAD_TYPES = ("application/octet-stream", "image/png", "image/jpeg", "image/webp")


def create_app(studio: Studio) -> Guard:
  """The Starlette app serving ``studio``, behind its :class:`Guard`."""

  async def index(request):
    response = FileResponse(STATIC / "index.html")
    if request.query_params.get("token") == studio.token:
      response.set_cookie(cookie_name(request.scope), studio.token, httponly=True,
                          samesite="strict", path="/")
    return response

  async def models(request):
    return JSONResponse({"ready": True, "models": [e.describe() for e in studio.engines.values()],
                         "save": studio.out is not None})

  async def new_session(request):
    body = await body_json(request)
    name = body.get("model", next(iter(studio.engines)))
    if not isinstance(name, str) or name not in studio.engines:
      raise ApiError(404, f"no model named {ops.shown(name)} (loaded: {', '.join(studio.engines)})")
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
      return await streamed(request, studio, session, op)
    if op not in ops.OPS:
      raise ApiError(404, f"unknown edit {op[:40]!r}")
    if op == "upload":
      ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
      if ctype not in UPLOAD_TYPES:
        raise ApiError(415, f"send the photo as {' or '.join(UPLOAD_TYPES)}, not "
                            f"{ctype[:60] or 'nothing'}")
      body = await read_body(request)
    else:
      body = await body_json(request)
    return JSONResponse(await run_in_threadpool(run_edit, studio, session, op, body))

  async def export(request):
    return await export_response(studio.session(request), request.path_params["fmt"])

  async def photo(request):
    session = studio.session(request)
    if session.target is None:
      raise ApiError(404, "this session has no uploaded photo")
    return Response(png(session.target), media_type="image/png")

  routes = [
      Route("/", guarded(index)),
      Route("/api/models", guarded(models)),
      Route("/api/session", guarded(new_session), methods=["POST"]),
      Route("/api/s/{sid}/state", guarded(state)),
      Route("/api/s/{sid}/photo.png", guarded(photo)),
      Route("/api/s/{sid}/export.{fmt}", guarded(export)),
      Route("/api/s/{sid}/{op}", guarded(edit), methods=["POST"]),
      Mount("/static", StaticFiles(directory=STATIC), name="static"),
  ]
  return Guard(Starlette(routes=routes), studio)


def uvicorn_config(app, host: str, port: int):
  """uvicorn's settings for the studio: at most :data:`MAX_CONNECTIONS` open connections
  (more get a 503 instead of each costing the server memory and a task)."""
  import uvicorn
  return uvicorn.Config(app, host=host, port=port, log_level="warning",
                        limit_concurrency=MAX_CONNECTIONS, timeout_keep_alive=5)
