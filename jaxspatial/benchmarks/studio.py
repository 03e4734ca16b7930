r"""Studio latency: each edit through the real HTTP server, after warm-up, and the page load.

    python -m jaxspatial.bench studio                                  # demo-size models
    python -m jaxspatial.bench studio --checkpoint runs/demo --checkpoint runs/sgan \
        --checkpoint runs/ssn --checkpoint runs/reg --repeats 20

Without ``--checkpoint`` it builds randomly initialised models with the ``demo`` presets'
architectures (configs/*.py:demo, 32 px): an edit's latency depends on the architecture, not
on the weights. The studio is served by uvicorn in a thread of this process on a free local
port and driven with httpx, so every figure includes JSON parsing, PNG encoding and HTTP:
the latency a user sees, less the browser's drawing. Rows: the median and the 25-75 %
range over ``--repeats`` requests; a drag's or a photo projection's rate is the streamed steps
per second the client receives (the projection: the session's own image uploaded as the photo,
5 x ``--repeats`` steps of the studio's default loss in W, 20 of them with a preview image).

``--clients N --seconds S`` measures the studio under load instead: N clients, each its own
session on the first StyleGAN2 model, each sending its next edit as soon as the last one
answered (new seed, truncation, undo, redo in turn) for S seconds. The row: edits per second,
the latency's p50 / p99 over every request, and the count of 4xx / 5xx answers -- the
figures of docs/reliability.md's studio section.
"""

from __future__ import annotations

import argparse
import base64
import pathlib
import socket
import statistics
import tempfile
import threading
import time
from typing import Callable

from jaxspatial import cli, errors

FAMILIES = ("stylegan2", "spatialgan", "ssn", "regressor")
STUDIO_NOTE = ("the studio's figures are HTTP round trips (JSON, PNG encoding, the server's "
               "host work around the compiled edits, several programs per request): a FLOP "
               "rate of that would be invented; the edits' programs have theirs in bench "
               "projection, alignment, regressor and generator")


def demo_models(root: pathlib.Path) -> list[pathlib.Path]:
  """Random-weight checkpoints of every family at its demo preset's architecture."""
  import jax
  import jax.numpy as jnp
  import ml_collections

  from jaxspatial import families
  from jaxspatial import checkpoint
  from jaxspatial.models import regressor as regressor_lib
  from jaxspatial.models import ssn as ssn_models
  from jaxspatial.training import config_lib
  key = jax.random.key(0)
  out, g_vars = [], None
  for family in FAMILIES:
    cfg = config_lib.load(family, "demo")
    path = root / family
    if family == "regressor":
      g_cfg = config_lib.load("stylegan2", "demo").model
      model_cfg = regressor_lib.regressor_model_config(g_cfg, depth=cfg.model.depth,
                                                       width=cfg.model.width)
      e_vars = regressor_lib.init_regressor(model_cfg, key)
      checkpoint.save_model_dir(path, {"e": e_vars, "g_ema": g_vars}, ml_collections.ConfigDict(
          {"model": model_cfg, "loss": {"lpips_weight": 0.0}}))
      out.append(path)
      continue
    g = families.build_generator(cfg.model)
    if family == "stylegan2":
      args = (jnp.zeros((1, cfg.model.z_dim)),)
    elif family == "ssn":
      args = (jnp.zeros((1, *ssn_models.grid_of(cfg.model), cfg.model.z_dim)),)
    else:
      args = (jnp.zeros((1, *g.latent_shape)), g.sample_heatmaps(key, 1))
    variables = jax.jit(g.init)({"params": key, "noise": key}, *args)
    g_vars = variables if family == "stylegan2" else g_vars
    checkpoint.save_model_dir(path, {"g_ema": variables},
                              ml_collections.ConfigDict({"model": cfg.model}))
    out.append(path)
  return out


def serve(app) -> tuple[str, Callable[[], None]]:
  """Serves ``app`` with uvicorn in a thread on a free local port, with the studio command's
  settings -> (base URL, stop)."""
  import uvicorn

  from jaxspatial.studio.server import uvicorn_config
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port))
  thread = threading.Thread(target=server.run, daemon=True)
  thread.start()
  while not server.started:
    time.sleep(0.05)

  def stop():
    server.should_exit = True
    thread.join(10)
  return f"http://127.0.0.1:{port}", stop


def _row(name: str, model: str, times_s: list[float], **extra) -> dict:
  q = statistics.quantiles(times_s, n=4) if len(times_s) > 1 else [times_s[0]] * 3
  return {"bench": f"studio {name}", "model": model, "median_ms": round(q[1] * 1e3, 1),
          "p25-p75_ms": f"{q[0] * 1e3:.1f}-{q[2] * 1e3:.1f}", "n": len(times_s), **extra}


def _timed(fn: Callable[[], object], repeats: int) -> list[float]:
  out = []
  for _ in range(repeats):
    t = time.perf_counter()
    fn()
    out.append(time.perf_counter() - t)
  return out


def _edits(client, engines, repeats: int) -> list[dict]:
  """One row per edit kind on the first model of the kind that offers it."""
  import numpy as np
  rows = []
  by_kind = {e.kind: e for e in reversed(engines)}

  def new(name):
    r = client.post("/api/session", json={"model": name})
    r.raise_for_status()
    return r.json()

  def post(s, name, **body):
    r = client.post(f"/api/s/{s['sid']}/{name}", json=body)
    r.raise_for_status()
    return r.json()
  for kind, engine in by_kind.items():
    s, label = new(engine.name), f"{engine.name} ({kind}, {engine.resolution}px)"
    rows.append(_row("new image (seed)", label, _timed(
        lambda: post(s, "generate", seed=int(np.random.randint(1000))), repeats)))
    if kind == "spatialgan":
      c = s["overlay"]["centres"][0]
      flip = [1.0]

      def move():
        flip[0] = -flip[0]
        post(s, "heatmap", op="move", index=0, row=c["row"], col=c["col"] + flip[0])
      rows.append(_row("heatmap move", label, _timed(move, repeats)))
    if kind == "ssn":
      rows.append(_row("SSN resample (6 candidates)", label, _timed(
          lambda: post(s, "resample", blocks=[[0, 1], [1, 1]], seed=7), repeats)))
    if kind == "regressor":
      import io

      from PIL import Image
      half = np.zeros((engine.resolution, engine.resolution), np.uint8)
      half[: engine.resolution // 2] = 255

      def url(a):
        buf = io.BytesIO()
        Image.fromarray(a).save(buf, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
      masks = [url(half), url(255 - half)]
      rows.append(_row("composite (2 parts)", label, _timed(
          lambda: post(s, "composite", masks=masks), repeats)))
    if "drag" in engine.edits:
      r = engine.resolution
      rows.append(_streamed(client, s["sid"], "drag", {
          "handles": [[r // 2, r // 4]], "targets": [[r // 2, r - 2]], "max_steps": 40},
          "drag step (streamed)", label))
    if "project" in engine.edits:                # the session's own image as the photo
      photo = base64.b64decode(s["image"].split(",", 1)[1])
      client.post(f"/api/s/{s['sid']}/upload", content=photo,
                  headers={"Content-Type": "image/png"}).raise_for_status()
      rows.append(_streamed(client, s["sid"], "project", {"steps": 5 * repeats},
                            "projection step (streamed)", label))
  return rows


def _streamed(client, sid: str, op: str, body: dict, name: str, label: str) -> dict:
  """One streamed edit: the time between its step events (one per step; the projection's
  preview events share a step) and the steps per second the client receives."""
  import json

  import numpy as np
  times, steps = [], []
  t0 = time.perf_counter()
  with client.stream("POST", f"/api/s/{sid}/{op}", json=body) as resp:
    for line in resp.iter_lines():
      if line.startswith("data: "):
        ev = json.loads(line[6:])
        if not steps or ev["step"] > steps[-1]:
          times.append(time.perf_counter() - t0)
          steps.append(ev["step"])
  rate = ((steps[-1] - steps[0]) / (times[-1] - times[0]) if len(steps) > 1 else float("nan"))
  return _row(name, label, np.diff(times).tolist() or [times[0]], steps_per_s=round(rate, 1),
              final=f"step {steps[-1]}")


def _page_load(base: str, token: str, client, repeats: int, browser=None) -> list[dict]:
  """The page's requests in order (HTML, CSS, JS, models, a new session), and in Chromium
  (navigation to the tokened URL until the page says ready): ``browser`` (a Playwright
  browser), else the system Chromium when it and Playwright exist."""
  import shutil

  def load():
    for path in ("/", "/static/studio.css", "/static/studio.js", "/api/models"):
      client.get(path).raise_for_status()
    client.post("/api/session", json={}).raise_for_status()
  rows = [_row("page load (HTTP requests)", "first model", _timed(load, repeats))]
  if browser is not None:
    return rows + [_browser_load(base, token, browser, repeats)]
  chromium = shutil.which("chromium") or shutil.which("chromium-browser")
  try:
    from playwright.sync_api import sync_playwright
  except ImportError:
    return rows
  if chromium is None:
    return rows
  with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
    rows.append(_browser_load(base, token, browser, repeats))
    browser.close()
  return rows


def _browser_load(base: str, token: str, browser, repeats: int) -> dict:
  page = browser.new_page()

  def navigate():
    page.goto(f"{base}/?token={token}")
    page.wait_for_function("() => document.getElementById('status').textContent === 'ready'")
  navigate()
  row = _row("page load (Chromium, to ready)", "first model", _timed(navigate, repeats))
  page.close()
  return row


def _load(base: str, token: str, engine, clients: int, seconds: float) -> dict:
  """``clients`` concurrent sessions editing for ``seconds`` (see the module docstring)."""
  import asyncio

  import httpx
  import numpy as np

  async def client(k: int, http, times: list, codes: list, deadline: float):
    r = await http.post("/api/session", json={"model": engine.name, "seed": k})
    r.raise_for_status()
    sid, i = r.json()["sid"], 0
    edits = [("generate", lambda: {"seed": int(np.random.randint(1 << 20))}),
             ("settings", lambda: {"truncation": float(np.random.choice([0.5, 0.7, 1.0]))}),
             ("undo", dict), ("redo", dict)]
    while time.perf_counter() < deadline:
      op, body = edits[i % len(edits)]
      i += 1
      t = time.perf_counter()
      r = await http.post(f"/api/s/{sid}/{op}", json=body())
      times.append(time.perf_counter() - t)
      codes.append(r.status_code)

  async def run():
    times, codes = [], []
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits,
                                 headers={"X-Studio-Token": token}) as http:
      start = time.perf_counter()
      await asyncio.gather(*(client(k, http, times, codes, start + seconds)
                             for k in range(clients)))
      return times, codes, time.perf_counter() - start
  times, codes, elapsed = asyncio.run(run())
  ms = np.asarray(times) * 1e3
  codes = np.asarray(codes)
  return {"bench": f"studio load ({clients} clients, {seconds:g} s)",
          "model": f"{engine.name} ({engine.kind}, {engine.resolution}px)",
          "edits_per_s": round(len(ms) / elapsed, 1),
          "p50_ms": round(float(np.percentile(ms, 50)), 1),
          "p99_ms": round(float(np.percentile(ms, 99)), 1), "n": len(ms),
          "4xx": int(((codes >= 400) & (codes < 500)).sum()), "5xx": int((codes >= 500).sum())}


def bench_load(checkpoints: list[str] | None, clients: int, seconds: float) -> list[dict]:
  """The load row (see the module docstring) on the first StyleGAN2 of ``checkpoints`` (default:
  the demo architecture, random weights)."""
  from jaxspatial.studio import engines as engines_lib
  from jaxspatial.studio import server
  with tempfile.TemporaryDirectory() as tmp:
    paths = checkpoints or demo_models(pathlib.Path(tmp))
    engine = next((e for e in map(engines_lib.load_engine, paths) if e.kind == "stylegan2"), None)
    if engine is None:
      raise errors.UserError("--clients needs a StyleGAN2 --checkpoint")
    engine.warm_up()
    studio = server.Studio([engine])
    base, stop = serve(server.create_app(studio))
    try:
      return [_load(base, studio.token, engine, clients, seconds)]
    finally:
      stop()


def bench_studio(checkpoints: list[str] | None = None, repeats: int = 10) -> list[dict]:
  """Rows of edit latencies and page-load times (see the module docstring)."""
  import httpx

  from jaxspatial.studio import engines as engines_lib
  from jaxspatial.studio import server
  with tempfile.TemporaryDirectory() as tmp:
    paths = checkpoints or demo_models(pathlib.Path(tmp))
    engines, rows = [], []
    for path in paths:
      engine = engines_lib.load_engine(path)
      t = time.perf_counter()
      engine.warm_up()
      rows.append({"bench": "studio warm-up (compile)", "model": engine.name,
                   "median_ms": round((time.perf_counter() - t) * 1e3), "n": 1})
      engines.append(engine)
    studio = server.Studio(engines)
    base, stop = serve(server.create_app(studio))
    try:
      with httpx.Client(base_url=base, timeout=600,
                        headers={"X-Studio-Token": studio.token}) as client:
        rows += _edits(client, engines, repeats)
        rows += _page_load(base, studio.token, client, repeats)
    finally:
      stop()
  return rows


def main(argv=None, prog: str = "python -m jaxspatial.bench studio") -> None:
  p = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog=__doc__.split("\n\n", 1)[1])
  p.add_argument("--checkpoint", action="append", metavar="DIR",
                 help="model directories to time (default: demo-architecture random models)")
  p.add_argument("--repeats", type=int, default=10, help="requests per edit (default 10)")
  p.add_argument("--clients", type=int, metavar="N",
                 help="measure under load instead: N concurrent sessions editing")
  p.add_argument("--seconds", type=float, default=60,
                 help="how long the --clients load runs (default 60)")
  args = p.parse_args(argv)
  if args.repeats < 2:
    raise errors.UserError("--repeats must be at least 2")
  if args.clients is not None and (args.clients < 1 or args.seconds <= 0):
    raise errors.UserError("--clients must be >= 1 and --seconds > 0")
  from jaxspatial.benchmarks import no_flop_rate, print_table
  rows = (bench_load(args.checkpoint, args.clients, args.seconds) if args.clients is not None
          else bench_studio(args.checkpoint, args.repeats))
  print_table([{**r, **no_flop_rate(STUDIO_NOTE)} for r in rows])


if __name__ == "__main__":
  cli.run(main)
