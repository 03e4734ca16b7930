"""Tiny random models of every kind, one studio app over them, and (for the browser tests) one
live server and one headless Chromium -- built once and shared by the studio's test files.
A second studio over a tiny indoor (multi-object) SpatialGAN is built only for the tests that
ask for it."""

import contextlib
import pathlib
import shutil
import socket
import threading
import time

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from jaxspatial import families
from jaxspatial import models
from jaxspatial import checkpoint
from jaxspatial.models import regressor as regressor_lib
from jaxspatial.models import ssn as ssn_models
from jaxspatial.models.spatialgan import spatialgan_model_config

RES = 16
# The architecture of tests/test_projection.py's models: their projection steps (the studio
# tests' costliest programs) then compile once for both files (persistent compilation cache).
SMALL = dict(z_dim=8, w_dim=8, n_mlp=1, channel_base=64, channel_max=8)
Z = SMALL["z_dim"]


def _save(path, cfg, init_args, extra=None, transform=None):
  g = families.build_generator(cfg)
  key = jax.random.key(0)
  g_vars = jax.jit(g.init)({"params": key, "noise": key}, *init_args(g))
  if transform is not None:
    g_vars = jax.tree.map(transform, g_vars)
  checkpoint.save_model_dir(path, {"g_ema": g_vars, **(extra or {})},
                            ml_collections.ConfigDict({"model": cfg}))
  return g_vars


def centre_taps_only(a):
  """A 3x3 conv kernel with its off-centre taps zeroed (other arrays as they are). The test
  SSN is built so: an image block then depends on other latent blocks only through what the
  up-sampling filters reach (~3 px) and through sigma_E's image-wide mean, closer to what a
  trained low-distortion SSN does than a random init, so that a test can see which blocks
  were resampled."""
  if a.ndim == 4 and a.shape[:2] == (3, 3):
    return a.at[:, :, :, :].multiply(jnp.zeros((3, 3, 1, 1)).at[1, 1].set(1.0))
  return a


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory):
  """{"sg2", "sgan", "ssn", "reg"}: 16-px randomly initialised checkpoints of each kind."""
  root = tmp_path_factory.mktemp("studio_models")
  sg2_cfg = models.stylegan2_model_config(RES, **SMALL)
  g_vars = _save(root / "sg2", sg2_cfg, lambda g: (jnp.zeros((1, Z)),))
  _save(root / "sgan", spatialgan_model_config(RES, sel_hidden=8, **SMALL),
        lambda g: (jnp.zeros((1, Z)), g.sample_heatmaps(jax.random.key(0), 1)))
  _save(root / "ssn", ssn_models.ssn_model_config(RES, grid=(4, 4), **SMALL),
        lambda g: (jnp.zeros((1, 4, 4, Z)),), transform=centre_taps_only)
  reg_cfg = regressor_lib.regressor_model_config(sg2_cfg, depth=18, width=8)
  e_vars = regressor_lib.init_regressor(reg_cfg, jax.random.key(1))
  checkpoint.save_model_dir(root / "reg", {"e": e_vars, "g_ema": g_vars},
                            ml_collections.ConfigDict({"model": reg_cfg,
                                                       "loss": {"lpips_weight": 0.0}}))
  return {k: root / k for k in ("sg2", "sgan", "ssn", "reg")}


@pytest.fixture(scope="session")
def studio(model_dirs, tmp_path_factory):
  """The Studio over every tiny model, saving into a temporary --out. Only the StyleGAN2 is
  warmed up (its warm-up compiles what the tests use anyway); the others compile the edits
  the tests make on first use, which keeps CI time to the programs actually tested."""
  from jaxspatial.studio import engines, server, sessions
  loaded = [engines.load_engine(model_dirs[name]) for name in ("sg2", "sgan", "ssn", "reg")]
  loaded[0].warm_up()
  out = tmp_path_factory.mktemp("studio_out") / "out"
  return server.Studio(loaded, sessions.SessionStore(max_sessions=4, max_history=5), out)


@pytest.fixture(scope="session")
def app(studio):
  from jaxspatial.studio import server
  return server.create_app(studio)


def script_client(app, token):
  """Starlette's TestClient on ``app`` as a script would call it: a local Host and the launch
  token in the X-Studio-Token header."""
  from starlette.testclient import TestClient
  return TestClient(app, base_url="http://127.0.0.1", headers={"X-Studio-Token": token})


@pytest.fixture(scope="module")
def client(app, studio):
  """:func:`script_client` on the app, one per test module."""
  with script_client(app, studio.token) as c:
    yield c


@pytest.fixture(scope="session")
def indoor_studio(studio, tmp_path_factory):
  """A studio over "indoor", a 16-px randomly initialised indoor SpatialGAN (3 objects:
  multi-object heatmaps, SEL_indoor with one style code per object, as ``demo_indoor``), and
  the single-object "sgan" engine of :func:`studio` (shared, compiled programs included)."""
  from jaxspatial.studio import engines, server, sessions
  path = tmp_path_factory.mktemp("studio_indoor") / "indoor"
  cfg = spatialgan_model_config(RES, sel_hidden=8, heatmaps="multi", encoding="indoor",
                                num_objects=3, **SMALL)
  _save(path, cfg, lambda g: (jnp.zeros((1, *g.latent_shape)),
                              g.sample_heatmaps(jax.random.key(0), 1)))
  return server.Studio([engines.load_engine(path), studio.engines["sgan"]],
                       sessions.SessionStore(max_sessions=4, max_history=8))


@pytest.fixture(scope="module")
def indoor_client(indoor_studio):
  from jaxspatial.studio import server
  with script_client(server.create_app(indoor_studio), indoor_studio.token) as c:
    yield c


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@contextlib.contextmanager
def serving(app):
  """``app`` served by uvicorn on a free local port (a thread of this process), with the
  studio command's settings -> its base URL."""
  import uvicorn

  from jaxspatial.studio.server import uvicorn_config
  port = _free_port()
  server = uvicorn.Server(uvicorn_config(app, "127.0.0.1", port))
  thread = threading.Thread(target=server.run, daemon=True)
  thread.start()
  deadline = time.time() + 30
  while not server.started and time.time() < deadline:
    time.sleep(0.05)
  assert server.started, "uvicorn did not start"
  try:
    yield f"http://127.0.0.1:{port}"
  finally:
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="session")
def live_server(app):
  """The studio over every tiny model, live (:func:`serving`)."""
  with serving(app) as url:
    yield url


@pytest.fixture(scope="session")
def indoor_server(indoor_studio):
  """:func:`indoor_studio`, live (:func:`serving`)."""
  from jaxspatial.studio import server
  with serving(server.create_app(indoor_studio)) as url:
    yield url


CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
  for name in CHROMIUM_NAMES:
    path = shutil.which(name)
    if path:
      return path
  return None


@pytest.fixture(scope="session")
def browser():
  """The system Chromium, headless, driven by Playwright (no browser download)."""
  playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
  path = find_chromium()
  if path is None:
    pytest.skip("no system Chromium on PATH (apt-get install chromium)")
  with playwright_api.sync_playwright() as p:
    b = p.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox"])
    yield b
    b.close()


@pytest.fixture(scope="session")
def screenshots() -> pathlib.Path:
  """Where the browser tests leave their screenshots (inspect them after a failure)."""
  out = pathlib.Path(__file__).resolve().parents[2] / "test-artifacts" / "studio"
  out.mkdir(parents=True, exist_ok=True)
  return out
