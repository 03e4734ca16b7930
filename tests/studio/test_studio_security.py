"""The studio as a local web app under attack (issue 35): a foreign Host, a missing or wrong
token, a cross-origin "simple" POST, oversized and malformed bodies, a client that vanishes
mid-stream, saves that would overwrite or fill the disk, memory beyond its budget, uploads in
formats no photo needs, and bugs that would leak internals. Every case is a refusal that leaves
the studio usable; the threat model is docs/reliability.md's "studio" section."""

import base64
import io
import json
import socket
import time

import httpx
import numpy as np
import pytest
from PIL import Image
from studio_http import assert_refused, png_url, post, raw, session, upload

from jaxspatial.studio import ops, server
from jaxspatial.studio.sessions import SessionStore

RES = 16


@pytest.fixture
def bare(app):
  """A client with a local Host and nothing else: no token, no cookie (a fresh browser)."""
  from starlette.testclient import TestClient
  with TestClient(app, base_url="http://127.0.0.1") as c:
    yield c


def _port(url: str) -> int:
  return int(url.rsplit(":", 1)[1])


# ---------------------------------------------------------------------------- access


def test_the_page_needs_the_token_and_keeps_it_in_a_strict_cookie(bare, studio):
  for path in ("/", "/static/studio.js", "/api/models"):
    assert_refused(bare.get(path), 403, "missing or wrong studio token")
  assert_refused(bare.get("/api/models", params={"token": studio.token + "x"}), 403,
                 "wrong studio token")
  page = bare.get("/", params={"token": studio.token})
  assert page.status_code == 200 and "<canvas" in page.text
  cookie = page.headers["set-cookie"].lower()
  assert "samesite=strict" in cookie and "httponly" in cookie and studio.token.lower() in cookie
  assert bare.get("/api/models").status_code == 200           # the cookie alone, as the page
  own = {"Origin": "http://127.0.0.1", "Content-Type": "application/json"}
  assert bare.post("/api/session", content=b"{}", headers=own).status_code == 200
  assert_refused(bare.post("/api/session", content=b"{}",
                           headers={"Content-Type": "application/json"}), 403, "show its Origin")


def test_a_foreign_host_and_a_cross_origin_simple_post_are_refused(bare, client, studio):
  """DNS rebinding names another Host; a page elsewhere sends a text/plain POST (no preflight),
  here even with the cookie a careless browser might attach."""
  n = len(studio.store)
  assert_refused(client.get("/api/models", headers={"Host": "evil.example:7860"}), 403,
                 "is not this studio's")
  bare.get("/", params={"token": studio.token})               # the user's tab set the cookie
  evil = {"Origin": "http://evil.example:7860", "Content-Type": "text/plain"}
  assert_refused(bare.post("/api/session", content=b'{"model": "sg2"}', headers=evil), 403,
                 "cross-origin request refused")
  assert_refused(client.post("/api/session", content=b"{}", headers=evil), 403, "cross-origin")
  plain = {"Origin": "http://127.0.0.1", "Content-Type": "text/plain"}
  assert_refused(bare.post("/api/session", content=b"{}", headers=plain), 415,
                 "application/json")
  assert len(studio.store) == n                               # no session was made
  for host in ("localhost:1", "[::1]:1", "127.0.0.1"):
    assert client.get("/api/models", headers={"Host": host}).status_code == 200
  lan = server.Studio(list(studio.engines.values()), token=studio.token, host="studio.lan")
  scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"",
           "headers": [(b"host", b"studio.lan:7860"), (b"x-studio-token", studio.token.encode())]}
  assert server.Guard(None, lan).refusal(scope) is None
  assert server.Guard(None, studio).refusal(scope)[0] == 403


def test_every_answer_forbids_framing_and_markup_strings(bare, client):
  for r in (client.get("/"), bare.get("/api/models"), client.get("/static/studio.js")):
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert "require-trusted-types-for 'script'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"


def test_bad_tokens_are_refused_at_the_command_line():
  from jaxspatial.cli import UserError
  from jaxspatial.studio import __main__ as cmd
  with pytest.raises(UserError, match="--token"):
    cmd.main(["--checkpoint", "x", "--token", "has spaces"])
  assert server.check_token("abc-DEF_12345") == "abc-DEF_12345"
  assert cmd.address("::1", 7860, "tok") == "http://[::1]:7860/?token=tok"
  assert cmd.address("127.0.0.1", 80, "tok") == "http://127.0.0.1:80/?token=tok"


# ---------------------------------------------------------------------------- bodies


def _http(port: int, head: str) -> socket.socket:
  sock = socket.create_connection(("127.0.0.1", port), timeout=10)
  sock.sendall(head.encode())
  return sock


def _status(sock: socket.socket) -> int:
  data = b""
  while b"\r\n" not in data:
    chunk = sock.recv(4096)
    if not chunk:
      break
    data += chunk
  return int(data.split(b" ", 2)[1])


def test_a_64_mib_body_is_refused_before_it_is_read(live_server, studio):
  with httpx.Client(base_url=live_server, headers={"X-Studio-Token": studio.token}) as c:
    port, sid = _port(live_server), session(c, "sg2")["sid"]
  head = (f"POST /api/s/{sid}/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
          f"X-Studio-Token: {studio.token}\r\nContent-Type: image/png\r\n")
  with _http(port, head + f"Content-Length: {64 * 2 ** 20}\r\n\r\n") as sock:
    assert _status(sock) == 413                      # answered with no body byte sent
  sent, chunk = 0, b"0" * 2 ** 20
  with _http(port, head + "Transfer-Encoding: chunked\r\n\r\n") as sock:
    sock.settimeout(2)
    try:
      while sent < 64 * 2 ** 20:
        sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        sent += len(chunk)
    except OSError:                                  # the server stopped reading, then closed
      pass
    sock.settimeout(10)
    assert _status(sock) == 413
  assert sent < 40 * 2 ** 20, sent                   # 16 MiB read, then the socket buffers


def test_small_routes_have_small_limits_and_lists_are_measured_first(client):
  s = session(client, "sg2")
  assert_refused(raw(client, s, "generate", b" " * (65 * 2 ** 10)), 413, "request body over")
  handles = [[1, 1]] * 9 + ["x"]                     # too long, and bad within: length first
  assert_refused(post(client, s, "drag", handles=handles, targets=[]), 400,
                 "handles: 10 pairs, at most 8")
  many = b'{"handles": [' + b",".join([b"[1,1]"] * 200_000) + b'], "targets": []}'
  assert_refused(raw(client, s, "drag", many), 400,     # counted before it is parsed
                 "request body has 200003 JSON arrays/objects; at most 4096")


@pytest.mark.parametrize("body,text", [
    ({"seed": 10 ** 400}, "seed must lie in [0, 2147483647], got an integer of 1329 bits"),
    ({"seed": 2.5}, "seed must be an integer, got 2.5"),
    ({"truncation": 10 ** 400}, "truncation must lie in [0.0, 2.0]"),
    ({"truncation": [0.5] * 1000}, "truncation must be a number, got a list of 1000"),
    ({"noise": {"a": 1}}, "noise must be one of const, random, none, got a JSON object of 1"),
    ({"noise": "x" * 5000}, "got 'xxxxxxxxxx"),
])
def test_malformed_values_are_one_short_line(client, body, text):
  s = session(client, "sg2")
  r = post(client, s, "generate" if "seed" in body else "settings", body)
  assert_refused(r, 400, text)
  assert len(r.json()["error"]) < 200


def test_huge_values_in_every_field_are_4xx(client):
  g = session(client, "sgan")
  assert_refused(post(client, g, "heatmap", op="move", index=0, row=10 ** 400, col=1), 400,
                 "row must lie in")
  assert_refused(post(client, g, "heatmap", op="scale", index=10 ** 400, factor=2), 400,
                 "index must lie in")
  assert_refused(post(client, g, "drag", handles=[[10 ** 400, 1]], targets=[[1, 1]]), 400,
                 "outside the 16x16 image")
  deep = b'{"seed": ' + b"[" * 3000 + b"]" * 3000 + b"}"     # under the container cap
  assert_refused(raw(client, g, "generate", deep), 400, "nested too deeply")


def test_a_bug_is_a_500_that_says_only_internal_error(client, monkeypatch):
  s = session(client, "sg2")

  def broken(session, body, studio):
    raise RuntimeError("/secret/path leaked")
  monkeypatch.setitem(ops.OPS, "undo", broken)
  r = post(client, s, "undo")
  assert r.status_code == 500 and r.json() == {"error": "internal error"}

  def broken_stream(session, body):
    yield {"type": "step", "step": 0}
    raise RuntimeError("/secret/path leaked")
  monkeypatch.setitem(ops.STREAMED, "drag", broken_stream)
  r = post(client, s, "drag")
  assert "secret" not in r.text and '"error": "internal error"' in r.text
  assert post(client, s, "generate", seed=3).status_code == 200      # released


# ---------------------------------------------------------------------------- uploads


def _encoded(fmt: str, size=(RES, RES)) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(np.full((*size[::-1], 3), 90, np.uint8)).save(buf, format=fmt)
  return buf.getvalue()


@pytest.mark.parametrize("fmt,ok", [("WEBP", True), ("JPEG", True), ("BMP", False),
                                    ("TIFF", False), ("GIF", False)])
def test_uploads_decode_only_png_jpeg_and_webp(client, fmt, ok):
  s = session(client, "sg2")
  r = upload(client, s, _encoded(fmt), "application/octet-stream")
  if ok:
    assert r.status_code == 200 and r.json()["photo"], r.text
  else:
    assert_refused(r, 400, "must be PNG, JPEG, WebP")


def test_uploads_need_an_image_type_and_masks_are_measured_before_decoding(client):
  s = session(client, "reg")
  assert_refused(upload(client, s, _encoded("PNG"), "text/plain"), 415, "image/png")
  head = _encoded("PNG", (4000, 3000))[:64]          # the header of a 4000x3000 PNG, no pixels
  masks = [png_url(np.zeros((RES, RES))),
           "data:image/png;base64," + base64.b64encode(head).decode()]
  assert_refused(post(client, s, "composite", masks=masks), 400,
                 "mask 1 is 4000x3000; the model makes 16x16")
  jpeg_mask = "data:image/png;base64," + base64.b64encode(_encoded("JPEG")).decode()
  assert_refused(post(client, s, "composite", masks=[jpeg_mask, jpeg_mask]), 400,
                 "mask 0 is not a readable image (it must be PNG)")


# ---------------------------------------------------------------------------- streams


@pytest.mark.parametrize("op", ["drag", "project"])
def test_a_mid_stream_disconnect_leaves_the_tab_usable_within_a_second(live_server, studio, op):
  with httpx.Client(base_url=live_server, timeout=60,
                    headers={"X-Studio-Token": studio.token}) as c:
    s = session(c, "sg2", seed=1)
    if op == "project":
      assert upload(c, s, _encoded("PNG")).status_code == 200
    body = ({"handles": [[8, 2]], "targets": [[8, 14]], "max_steps": 1000} if op == "drag"
            else {"steps": 5000})
    data = json.dumps(body).encode()
    sock = _http(_port(live_server), (
        f"POST /api/s/{s['sid']}/{op} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"X-Studio-Token: {studio.token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"))
    sock.sendall(data)
    seen = b""
    while seen.count(b"data: ") < 3:                 # the stream runs
      seen += sock.recv(65536)
    sock.close()
    closed, status = time.perf_counter(), None
    while time.perf_counter() - closed < 1.0 and status != 200:
      status = post(c, s, "generate", seed=2).status_code
    assert status == 200, f"still busy {time.perf_counter() - closed:.2f} s after the close"
    state = c.get(f"/api/s/{s['sid']}/state").json()
    assert state["history"] == ["seed 1", "seed 2"]    # the abandoned edit left no state


def test_connections_beyond_the_limit_get_503(live_server, studio):
  def status_within(seconds: float, want: int) -> int:
    """Asks until the answer is ``want`` (the server accepts or drops sockets in its own
    thread) or ``seconds`` pass; a new connection each time, as a new client."""
    deadline, status = time.perf_counter() + seconds, None
    while status != want and time.perf_counter() < deadline:
      status = httpx.get(live_server + "/api/models",
                         headers={"X-Studio-Token": studio.token}).status_code
    return status
  port = _port(live_server)
  socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(server.MAX_CONNECTIONS)]
  try:
    assert status_within(5, 503) == 503
  finally:
    for sock in socks:
      sock.close()
  assert status_within(5, 200) == 200


# ---------------------------------------------------------------------------- saves, memory


def test_saves_never_overwrite_and_stop_at_the_cap(client, studio, monkeypatch):
  s = session(client, "sg2", seed=5)
  prefix = f"sg2_{s['sid'][:8]}_"
  assert post(client, s, "save").status_code == 200
  post(client, s, "generate", seed=6)
  post(client, s, "undo")                            # the old name came from history length
  squatter = studio.out / f"{prefix}0001.png"
  squatter.write_bytes(b"mine")                      # the next name is taken: skipped, kept
  assert post(client, s, "save").status_code == 200
  assert post(client, s, "save").status_code == 200
  mine = sorted(p.name for p in studio.out.iterdir() if p.name.startswith(prefix))
  assert mine == [f"{prefix}{n:04d}{ext}" for n in (0, 1, 2, 3) for ext in (".npz", ".png")
                  if (n, ext) != (1, ".npz")]
  assert squatter.read_bytes() == b"mine"
  monkeypatch.setattr(studio, "max_saves", len(list(studio.out.iterdir())) + 1)
  assert_refused(post(client, s, "save"), 400, "--out holds")
  monkeypatch.setattr(studio, "max_saves", 10 ** 6)
  monkeypatch.setattr(studio, "max_save_bytes", 1)
  assert_refused(post(client, s, "save"), 400, "move them away to save more")


def test_sessions_fit_a_byte_budget_dropping_old_undo_steps_first(studio):
  engine = studio.engines["sg2"]
  one = engine.new(0)
  store = SessionStore(max_sessions=8, max_history=50, max_bytes=0)
  a = store.create(engine, one)
  assert a.state.image.dtype == np.uint8 and a.nbytes > 0
  per_state = a.nbytes
  store.max_bytes = 6 * per_state
  for seed in range(1, 10):
    a.push(engine.new(seed))
    store.fit(a)
  assert len(a.history) == 6 and a.history[-1].seed == 9 and a.history[0].seed == 4
  b = store.create(engine, one)                      # a second tab: a's oldest step goes
  assert len(a.history) == 5 and store.nbytes() <= store.max_bytes
  store.max_bytes = per_state                        # room for one state: the LRU tab goes
  b.push(engine.new(20))
  store.fit(b)
  assert store.get(a.sid) is None and len(b.history) == 1 and b.state.seed == 20
