"""The family registry: a family defined inside a test trains, saves and loads through the
package's own paths without any package file naming it; ``js.load`` never imports the trainer."""

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


@pytest.fixture
def offset_family():
  family = families.register(families.Family("stylegan2_offset",
                                             generator=build_offset_generator))
  yield family
  families.unregister(family.kind)


@pytest.mark.slow
def test_a_family_registered_in_a_test_trains_saves_and_loads(offset_family, tmp_path):
  from jaxspatial.training import loop
  config = _config("stylegan2")
  config.model.kind = offset_family.kind
  config.update(total_steps=2, checkpoint_every=0, sample_every=0, log_every=1)
  config.loss.update(r1_gamma=0.0, pl_weight=0.0)   # one step program to compile
  config.mesh.data = 1
  trainer = loop.Trainer(config)
  assert isinstance(trainer.family.generator, OffsetGenerator)
  loop.train(config, tmp_path, trainer)
  m = js.load(tmp_path)
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


def test_every_builtin_reference_resolves():
  for family in families.FAMILIES.values():
    for field in ("generator", "discriminator", "model", "studio", "training", "trainer",
                  "validate"):
      ref = getattr(family, field)
      assert ref is None or callable(families.resolve(ref)), (family.kind, field)
    for ref in family.converters.values():
      assert callable(families.resolve(ref))


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
