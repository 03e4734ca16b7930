"""The family registry: a family defined inside a test trains, saves, loads, projects, drags
and opens in the studio through the package's own paths without any package file naming it;
``js.load`` never imports the trainer."""

import contextlib
import json
import pathlib
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

import jaxspatial as js
from jaxspatial import families
from jaxspatial import models as models_lib
from jaxspatial import checkpoint
from jaxspatial.cli import UserError
from jaxspatial.models import stylegan2 as sg2
from jaxspatial.training import config_lib

REPO = pathlib.Path(__file__).resolve().parents[1]


def _config(name: str, preset: str = "tiny") -> ml_collections.ConfigDict:
  return config_lib.load(name, preset)


# ------------------------------------------------------------------ a toy family


class OffsetSynthesis(sg2.SynthesisNetwork):
  """StyleGAN2's synthesis with one learned constant per conv layer added to its output."""

  def styled_conv(self, name, block, features, up):
    conv = super().styled_conv(name, block, features, up)
    offset = self.param(f"offset_{name}", nn.initializers.zeros, (features,))
    return lambda x, w, noise: conv(x, w, noise) + offset.astype(x.dtype)


class OffsetGenerator(sg2.Generator):
  def make_synthesis(self):
    return OffsetSynthesis(self.resolution, self.channels, self.dtype, name="synthesis")


def build_offset_generator(cfg):
  return OffsetGenerator(resolution=cfg.resolution, z_dim=cfg.z_dim, w_dim=cfg.w_dim,
                         n_mlp=cfg.n_mlp, lr_mlp=cfg.lr_mlp,
                         channels=models_lib.channel_table(cfg),
                         dtype=models_lib.compute_dtype(cfg))


OFFSET = families.Family("stylegan2_offset", generator=build_offset_generator)
"""The toy family: one ``register`` call, and no package file names it."""


@contextlib.contextmanager
def registered(family: families.Family):
  """``family`` registered for the ``with`` block only (other tests see the built-ins alone)."""
  families.register(family)
  try:
    yield family
  finally:
    families.unregister(family.kind)


@pytest.fixture(scope="module")
def offset_trained(tmp_path_factory):
  """The toy family trained two tiny steps, once for this module: ``(trainer, checkpoint dir)``."""
  from jaxspatial.training import loop
  with registered(OFFSET):
    config = _config("stylegan2")
    config.model.kind = OFFSET.kind
    config.update(total_steps=2, checkpoint_every=0, sample_every=0, log_every=1)
    config.loss.update(r1_gamma=0.0, pl_weight=0.0)   # one step program to compile
    config.mesh.data = 1
    trainer = loop.Trainer(config)
    path = tmp_path_factory.mktemp("offset_run")
    loop.train(config, path, trainer)
  return trainer, path


@pytest.fixture
def offset_run(offset_trained):
  """``(family, trainer, checkpoint dir)``, the family registered during the test."""
  with registered(OFFSET) as family:
    yield (family, *offset_trained)


@pytest.mark.slow
def test_a_family_registered_in_a_test_trains_saves_and_loads(offset_run):
  offset_family, trainer, path = offset_run
  assert isinstance(trainer.plugin.generator, OffsetGenerator)
  m = js.load(path)
  assert type(m) is js.GeneratorModel and m.step == 2
  assert isinstance(m.generator, OffsetGenerator)
  params = m.g_vars["params"]["synthesis"]
  offsets = {k: np.asarray(v) for k, v in params.items() if k.startswith("offset_")}
  assert sorted(offsets) == sorted(f"offset_{n}" for n in
                                   ["conv1", "convs_0", "convs_1", "convs_2", "convs_3"])
  assert all(np.abs(v).max() > 0 for v in offsets.values())   # trained: they got gradients
  z = m.sample_z(0, 2)
  x = m.generate(z)
  zeroed = {**m.g_vars, "params": {**m.g_vars["params"], "synthesis": {
      k: (jnp.zeros_like(v) if k.startswith("offset_") else v) for k, v in params.items()}}}
  x0 = np.asarray(m.generator.apply(zeroed, jnp.asarray(z)))
  assert x.shape == (2, 16, 16, 3) and np.abs(x - x0).max() > 1e-4   # the offsets are used


@pytest.mark.slow
def test_a_family_registered_in_a_test_projects_drags_and_opens_in_the_studio(offset_run):
  """The edit layer and the studio take the toy family through the hooks its model class
  inherits (``GeneratorModel``) and the engine its family defaults to: no kind lists to extend."""
  from starlette.testclient import TestClient

  from jaxspatial.edit import drag
  from jaxspatial.studio import engines, server, sessions
  family, _, path = offset_run
  m = js.load(path)
  assert m.kind == family.kind and m.projection_spaces == ("w", "wplus") and m.draggable
  target = m.generate(m.sample_z(7, 1))[0]
  p = m.project(target, steps=3, loss="mse")
  assert p.kind == family.kind and p.ws.shape == (1, m.num_ws, m.w_dim) and p.steps == 3
  assert p.image.shape == (1, 16, 16, 3) and np.isfinite(p.loss).all()
  r = drag.drag(m, p.ws, [[8, 4]], [[8, 9]], noise=p.noise,
                config=drag.DragConfig(max_steps=3))
  assert r.image.shape == (16, 16, 3) and 1 <= r.steps <= 3 and r.heatmaps is None
  assert not np.allclose(r.ws, p.ws)                       # the latent moved

  engine = engines.load_engine(path)
  assert type(engine) is engines.Engine and "drag" in engine.edits
  studio = server.Studio([engine], sessions.SessionStore(max_sessions=2, max_history=3))
  with TestClient(server.create_app(studio), base_url="http://127.0.0.1",
                  headers={"X-Studio-Token": studio.token}) as client:
    models = client.get("/api/models").json()["models"]
    assert [(d["kind"], d["projection"]["spaces"]) for d in models] == [
        (family.kind, ["w", "wplus"])]
    s = client.post("/api/session", json={"model": engine.name, "seed": 3}).json()
    g = client.post(f"/api/s/{s['sid']}/generate", json={"seed": 4}).json()
    assert g["seed"] == 4 and g["image"].startswith("data:image/png") and g["image"] != s["image"]
    d = client.post(f"/api/s/{s['sid']}/drag", json={"handles": [[8, 4]], "targets": [[8, 9]],
                                                     "max_steps": 2})
    assert d.status_code == 200 and '"type": "done"' in d.text
    refused = client.post(f"/api/s/{s['sid']}/resample", json={"blocks": [[0, 0]]})
    assert refused.status_code == 400 and "needs a ssn model" in refused.json()["error"]


def test_unknown_kinds_are_one_line_errors(tmp_path):
  with pytest.raises(UserError, match="unknown model kind 'nope'"):
    families.get("nope")
  cfg = models_lib.stylegan2_model_config(8)
  g = families.build_generator(cfg)
  v = jax.jit(g.init)(jax.random.key(0), jnp.zeros((1, cfg.z_dim)))
  cfg.kind = "nope"
  checkpoint.save_model_dir(tmp_path, {"g_ema": v}, ml_collections.ConfigDict({"model": cfg}))
  with pytest.raises(UserError, match="unknown model kind 'nope'"):
    js.load(tmp_path)
  with pytest.raises(ValueError, match="already registered"):
    families.register(families.Family("ssn"))


class WPlusOnlyModel(js.GeneratorModel):
  """A family's model class saying what the edit layer may do with it: project in W+ only,
  no drag."""
  projection_spaces = ("wplus",)
  draggable = False


def test_the_edit_layer_and_the_studio_ask_the_models_class(tmp_path):
  """What a family's model class declares is what projection, drag and the studio offer: no
  kind list in edit/ or studio/ to extend, and refusals name the registered kinds that do
  offer it."""
  from jaxspatial.edit import drag, projection
  from jaxspatial.studio import engines, ops
  with registered(families.Family("wplus_only", generator=build_offset_generator,
                                  model=WPlusOnlyModel)) as family:
    cfg = models_lib.stylegan2_model_config(8, z_dim=8, w_dim=8, n_mlp=1, channel_base=32,
                                            channel_max=8)
    cfg.kind = family.kind
    _save_init(tmp_path, cfg, jnp.zeros((1, 8)))
    m = js.load(tmp_path)
    assert type(m) is WPlusOnlyModel
    with pytest.raises(UserError, match=r"projected in space wplus, not 'w'"):
      m.project(np.zeros((8, 8, 3)), steps=0, space="w", loss="mse")
    with pytest.raises(UserError, match="dragging works on stylegan2 and spatialgan models, not "
                                        "'wplus_only'"):
      drag.Dragger(m)
    assert "wplus_only" in projection.projectable_kinds()
    engine = engines.load_engine(tmp_path)
    assert "drag" not in engine.edits and "drag" not in engine.ops
    assert engine.describe()["projection"]["spaces"] == ["wplus"]
    with pytest.raises(UserError, match="'drag' needs a stylegan2 or spatialgan model"):
      ops.check_kind(engine, "drag")
    ops.check_kind(engine, "project")


# What loop.train calls on a trainer (the GAN Trainer and the regressor's alike).
TRAINER_METHODS = ("initialize", "global_batch", "step", "save", "restore", "sample_inputs",
                   "samples")


def test_every_builtin_reference_names_an_object_of_its_role():
  """Each built-in "module:attr" string names an object that can play its field's role: the
  builders give Flax modules for the kind's own tiny preset, the classes derive from the base
  their callers drive, a trainer has what ``loop.train`` calls, the rest are functions."""
  from jaxspatial.api.model import Model
  from jaxspatial.studio.engines import Engine
  from jaxspatial.training import gan_step
  bases = {"model": Model, "studio": Engine, "training": gan_step.StyleGAN2Plugin}
  for family in families.FAMILIES.values():
    for field, base in bases.items():
      ref = getattr(family, field)
      obj = None if ref is None else families.resolve(ref)
      assert obj is None or (isinstance(obj, type) and issubclass(obj, base)), (family.kind, field)
    trainer = families.resolve(family.trainer)
    missing = [m for m in TRAINER_METHODS if not callable(getattr(trainer, m, None))]
    assert not missing, (family.kind, missing)
    for field in ("validate", "complete"):
      ref = getattr(family, field)
      assert ref is None or callable(families.resolve(ref)), (family.kind, field)
    for name, ref in family.converters.items():
      assert callable(families.resolve(ref)), (family.kind, name)
    model_cfg = config_lib.load(family.kind, "tiny").model
    if family.generator is not None:
      assert isinstance(family.build_generator(model_cfg), nn.Module), family.kind
      assert isinstance(family.build_discriminator(model_cfg), nn.Module), family.kind


# ------------------------------------------------------------------ js.load stays light


def _save_init(path, cfg, *init_inputs):
  """A checkpoint directory holding freshly initialised G variables of ``cfg``."""
  g = families.build_generator(cfg)
  v = jax.jit(g.init)({"params": jax.random.key(0), "noise": jax.random.key(1)}, *init_inputs)
  checkpoint.save_model_dir(path, {"g_ema": v}, ml_collections.ConfigDict({"model": cfg}))


def test_js_load_imports_no_training_module(tmp_path):
  from jaxspatial.models import regressor as regressor_lib
  from jaxspatial.models.spatialgan import spatialgan_model_config
  from jaxspatial.models.ssn import ssn_model_config
  tiny = dict(z_dim=8, w_dim=8, n_mlp=1, channel_base=32, channel_max=8)
  _save_init(tmp_path / "ssn", ssn_model_config(8, grid=(2, 2), **tiny), jnp.zeros((1, 2, 2, 8)))
  sgan_cfg = spatialgan_model_config(8, **tiny)
  heatmaps = families.build_generator(sgan_cfg).sample_heatmaps(jax.random.key(0), 1)
  _save_init(tmp_path / "sgan", sgan_cfg, jnp.zeros((1, 8)), heatmaps)
  g_cfg = models_lib.stylegan2_model_config(16, **tiny)
  g_vars = jax.jit(families.build_generator(g_cfg).init)(jax.random.key(0),
                                                           jnp.zeros((1, 8)))
  r_cfg = regressor_lib.regressor_model_config(g_cfg, depth=18, width=8)
  checkpoint.save_model_dir(tmp_path / "reg", {"e": regressor_lib.init_regressor(
      r_cfg, jax.random.key(1)), "g_ema": g_vars}, ml_collections.ConfigDict({"model": r_cfg}))
  script = (
      "import json, sys, jaxspatial as js\n"
      "kinds = []\n"
      "for path in sys.argv[1:]:\n"
      "  m = js.load(path)\n"
      "  m.generate(m.sample_z(0, 1))\n"
      "  kinds.append(m.kind)\n"
      "print(json.dumps({'kinds': kinds, 'training': sorted(\n"
      "    n for n in sys.modules if n.startswith('jaxspatial.training'))}))\n")
  out = subprocess.run([sys.executable, "-c", script, *(str(tmp_path / d) for d in
                                                        ("ssn", "sgan", "reg"))],
                       capture_output=True, text=True, cwd=REPO, timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  report = json.loads(out.stdout.strip().splitlines()[-1])
  assert report == {"kinds": ["ssn", "spatialgan", "regressor"], "training": []}
