"""SpatialGAN generator variants under jit/grad, the model API (js.load), the training family
with the real GAN step, and the edit_heatmap command."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

from helpers import np_init, rbg_keys
import jaxspatial as js
from jaxspatial import edit_heatmap
from jaxspatial import families
from jaxspatial import models
from jaxspatial import checkpoint
from jaxspatial.api.spatialgan import SpatialGANModel
from jaxspatial.cli import UserError
from jaxspatial.models import heatmaps as hm
from jaxspatial.models import spatialgan as sp
from jaxspatial.training import config_lib

TINY = dict(z_dim=8, w_dim=8, n_mlp=1, channel_base=64, channel_max=8, sel_hidden=8,
            mbstd_group_size=2)


def load_config(preset):
  return config_lib.load("spatialgan", preset)


@pytest.mark.parametrize("variant", [dict(), dict(heatmaps="multi", encoding="indoor")])
def test_generator_runs_under_jit_and_grad(variant):
  G = families.build_generator(sp.spatialgan_model_config(16, **TINY, **variant))
  key = jax.random.key(0, impl="rbg")     # cheaper to compile than threefry
  h = G.sample_heatmaps(key, 2)
  z = jax.random.normal(key, (2,) + G.latent_shape)
  g_vars = np_init(G, 0, z, h)

  @jax.jit
  def loss_and_grad(params, centers):
    def loss(params, centers):
      img = G.apply({**g_vars, "params": params}, z, h.replace(centers=centers),
                    noise_mode="random", rngs={"noise": key})
      return jnp.mean(img ** 2), img
    return jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, centers)

  (value, img), (g_params, g_centers) = loss_and_grad(g_vars["params"], h.centers)
  assert img.shape == (2, 16, 16, 3) and np.isfinite(float(value))
  leaves = jax.tree.leaves(g_params)
  assert all(np.all(np.isfinite(np.asarray(l))) for l in leaves)
  # The gradients are the loss's own: a central difference of the loss along each gradient
  # (the same compiled function, values only) gives its norm, for the weights and for the
  # heatmap centres (the heatmaps steer the image).
  norm = float(jnp.sqrt(sum(jnp.sum(l ** 2) for l in leaves)))
  step = jax.tree.map(lambda g: 1e-3 * g / norm, g_params)
  up = jax.tree.map(jnp.add, g_vars["params"], step)
  down = jax.tree.map(jnp.subtract, g_vars["params"], step)
  slope = (float(loss_and_grad(up, h.centers)[0][0])
           - float(loss_and_grad(down, h.centers)[0][0])) / 2e-3
  assert norm > 0 and slope == pytest.approx(norm, rel=0.01), (slope, norm)
  # The centres' gradient is small beside the loss (~0.2 against ~15): a 1e-3 step would move
  # the loss by less than float32 round-off makes of it, so they take a 1e-2 step.
  norm = float(jnp.linalg.norm(g_centers))
  step = 1e-2 * g_centers / norm
  slope = (float(loss_and_grad(g_vars["params"], h.centers + step)[0][0])
           - float(loss_and_grad(g_vars["params"], h.centers - step)[0][0])) / 2e-2
  assert norm > 0 and slope == pytest.approx(norm, rel=0.01), (slope, norm)


@pytest.mark.parametrize("variant,steered", [
    (dict(encoding="concat", coarse=True), True),
    (dict(encoding="norm", heatmap_input="noise"), False),
    (dict(encoding="flatten", heatmaps="independent"), True),
    (dict(encoding="none"), False),
])
def test_ablation_variants(variant, steered):
  """Moving a centre changes the image iff the variant encodes the heatmap."""
  G = families.build_generator(sp.spatialgan_model_config(16, **TINY, **variant))
  h = G.sample_heatmaps(jax.random.key(1), 1)
  z = jax.random.normal(jax.random.key(2), (1, 8))
  v = np_init(G, 1, z, h)
  f = jax.jit(lambda h: G.apply(v, z, h, rngs={"noise": jax.random.key(3)}))
  a, b = np.asarray(f(h)), np.asarray(f(h.move(0, 0.5, -0.5)))
  assert np.all(np.isfinite(a))
  assert (np.abs(a - b).max() > 1e-4) == steered
  if variant.get("encoding") == "none":
    assert "sel_conv1" not in v["params"]["synthesis"]


def test_sel_positions_official_default_and_paper_text():
  def synthesis_shapes(cfg):
    G = families.build_generator(cfg)
    h = G.sample_heatmaps(jax.random.key(0), 1)
    return jax.eval_shape(lambda: G.init({"params": jax.random.key(0)}, jnp.zeros((1, 8)),
                                         h))["params"]["synthesis"]

  official = synthesis_shapes(sp.spatialgan_model_config(32, **TINY))
  # EqGAN-SA: every conv and ToRGB of every block; from 32 px on, the 96-channel concatenation
  assert {"sel_convs_4", "sel_convs_5", "sel_to_rgbs_2"} <= set(official)
  assert official["sel_convs_5"]["shared"]["weight"].shape[2] == 96
  assert official["sel_convs_3"]["shared"]["weight"].shape[2] == 32
  legacy = sp.spatialgan_model_config(32, **TINY)
  legacy.sel_resolutions = ()                 # configs saved before: the paper text's blocks
  for cfg in (sp.spatialgan_model_config(32, sel_resolutions=(4, 8, 16), **TINY), legacy):
    shapes = synthesis_shapes(cfg)
    names = set(shapes)
    # blocks 4, 8, 16 px: every conv and ToRGB; 32 px: none
    assert {"sel_conv1", "sel_to_rgb1", "sel_convs_0", "sel_convs_1", "sel_to_rgbs_0",
            "sel_convs_2", "sel_convs_3", "sel_to_rgbs_1"} <= names
    assert not {"sel_convs_4", "sel_convs_5", "sel_to_rgbs_2"} & names
  assert {"heatmap_embed_0", "heatmap_embed_1", "heatmap_embed_2"} <= names
  embed_in = shapes["heatmap_embed_2"]["conv0"]["weight"].shape
  assert embed_in[2] == 4                     # level 2 has four centres


# ------------------------------------------------------------------ training + model API


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
  """One real GAN step of the ``tiny`` preset (single device), saved as a model dir."""
  from jaxspatial.training import loop
  config = ml_collections.ConfigDict(load_config("tiny"))
  config.mesh.data = 1
  config.loss.update(r1_gamma=0.0, pl_weight=0.0)   # their branches are the lead's tests
  images = np.random.default_rng(0).uniform(-1, 1, (config.batch_size, 16, 16, 3))
  with rbg_keys():
    trainer = loop.Trainer(config)
    trainer.initialize()
    metrics = jax.device_get(
        trainer.step(trainer.global_batch({"image": images.astype(np.float32)})))
  path = tmp_path_factory.mktemp("sgan")
  s = trainer.state
  checkpoint.save_model_dir(path, {"g": s.g, "g_ema": s.g_ema, "d": s.d}, config)
  return path, metrics


def test_train_step_includes_alignment(trained):
  _, metrics = trained
  for key in ("align_loss", "align/4px", "align/8px", "g_loss", "d_loss"):
    assert np.isfinite(metrics[key]), key
  # The loss is the sum of its levels, each a mean of |CAM - heatmap| over values in [0, 1]
  # (a CAM normalised to [0, 1] against a heatmap in [0, 1]), so each lies in (0, 1].
  levels = [float(metrics[f"align/{r}px"]) for r in (4, 8)]
  assert all(0 < v <= 1 for v in levels), levels
  assert float(metrics["align_loss"]) == pytest.approx(sum(levels), rel=1e-5)


def test_configs():
  for preset in ("tiny", "demo", "demo_indoor", "paper256"):
    c = load_config(preset)
    assert c.model.kind == "spatialgan" and c.loss.align_weight == 1.0
  paper = load_config("paper256")
  assert paper.loss.pl_weight == 0 and paper.loss.style_mixing == 0
  assert paper.model.resolution == 256 and paper.batch_size == 64
  indoor = load_config("demo_indoor")
  assert (indoor.model.encoding, indoor.model.heatmaps, indoor.loss.align_objective) == (
      "indoor", "multi", "min")
  with pytest.raises(ValueError):
    load_config("nope")


def test_model_api(trained):
  path, _ = trained
  m = js.load(path)
  assert isinstance(m, SpatialGANModel) and m.kind == "spatialgan"
  z = m.sample_z(3, 2)
  h = m.sample_heatmaps(3, 2)
  assert z.shape == (2, 32) and isinstance(h.centers, np.ndarray) and h.num_centers == 7
  x = m.generate(z, heatmaps=h)
  assert x.shape == (2, 16, 16, 3) and x.dtype == np.float32
  np.testing.assert_array_equal(x, m.generate(z, heatmaps=h))          # deterministic
  np.testing.assert_array_equal(x, m.generate(z, seed=3))              # default heatmaps
  moved = m.generate(z, heatmaps=h.move(0, 0.4, -0.3))
  assert np.abs(moved - x).max() > 1e-4
  one = m.generate(z, heatmaps=h.take(slice(0, 1)))                    # one layout for all
  np.testing.assert_allclose(one[0], x[0], atol=1e-6)
  assert m.discriminate(x).shape == (2,)
  with pytest.raises(UserError):
    m.generate(np.zeros((2, 5)))
  with pytest.raises(UserError):
    m.generate(z, heatmaps=hm.sample(jax.random.key(0), 2, "multi"))
  with pytest.raises(UserError):
    m.restyle(z, 0, 1)


def test_indoor_model(tmp_path):
  config = load_config("tiny")
  config.model = sp.spatialgan_model_config(16, heatmaps="multi", encoding="indoor", **TINY)
  G = families.build_generator(config.model)
  h = G.sample_heatmaps(jax.random.key(0), 1)
  g_vars = np_init(G, 2, jnp.zeros((1,) + G.latent_shape), h)
  checkpoint.save_model_dir(tmp_path, {"g_ema": g_vars}, config)
  m = js.load(tmp_path)
  z = m.sample_z(0, 2)
  assert z.shape == (2, 4, 8) and m.indoor
  z2 = m.restyle(z, 1, seed=5)
  np.testing.assert_array_equal(np.delete(z2, 2, axis=1), np.delete(z, 2, axis=1))
  assert np.abs(z2[:, 2] - z[:, 2]).min() > 0
  h = m.sample_heatmaps(0, 2)
  x = m.generate(z, heatmaps=h)
  assert np.abs(m.generate(z2, heatmaps=h) - x).max() > 1e-5
  assert np.abs(m.generate(z, heatmaps=h.remove(0)) - x).max() > 1e-5
  w = m.mapping(z)
  assert w.shape == (2, 4, 8)


def test_edit_heatmap_command(trained, tmp_path, capsys):
  path, _ = trained
  out = tmp_path / "before_after.png"
  edit_heatmap.main(["--checkpoint", str(path), "--seed", "5", "--move", "0:0.3,-0.2",
                     "--scale", "3:1.5", "--remove", "6", "--size", "32", "--out", str(out)])
  with Image.open(out) as im:
    assert im.size == (2 * 34 + 2, 36)
  grid = tmp_path / "grid.png"
  edit_heatmap.main(["--checkpoint", str(path), "--grid", "latents", "--rows", "2", "--cols",
                     "3", "--size", "16", "--out", str(grid)])
  with Image.open(grid) as im:
    assert im.size == (3 * 18 + 2, 2 * 18 + 2)
  assert "wrote" in capsys.readouterr().out
  for bad in (["--move", "0:0.3"], ["--move", "9:0.1,0.1"], ["--scale", "0:-1"],
              ["--restyle", "0"], []):
    with pytest.raises(UserError):
      edit_heatmap.main(["--checkpoint", str(path), "--out", str(tmp_path / "x.png"), *bad])


def test_edit_parsing_keeps_order():
  args = edit_heatmap.parse_args(["--checkpoint", "d", "--out", "o.png", "--remove", "2",
                                  "--move", "1:0.5,-0.25", "--scale", "0:2"])
  parsed = [edit_heatmap.parse_edit(op, t) for op, t in args.edits]
  assert parsed == [("remove", 2), ("move", 1, 0.5, -0.25), ("scale", 0, 2.0)]


@pytest.mark.slow
def test_training_step_benchmark_table(monkeypatch):
  """Smoke test at tiny size: the table's rows and columns (timings are the benchmark's job),
  on the StyleGAN2 and SpatialGAN variants (each compiles a trainer of its own)."""
  from jaxspatial.benchmarks import spatialgan as bench_spatialgan
  variants = dict((v[0], v) for v in bench_spatialgan.TRAIN_VARIANTS)
  monkeypatch.setattr(bench_spatialgan, "TRAIN_VARIANTS",
                      (variants["stylegan2"], variants["spatialgan"]))
  rows = bench_spatialgan.bench_training_step("tiny", repeats=1)
  assert [r["variant"] for r in rows] == [v[0] for v in bench_spatialgan.TRAIN_VARIANTS]
  assert all({"variant", "seconds", "relative", "compile_s", "batch"} <= set(r) for r in rows)
  with pytest.raises(UserError, match="--repeats"):
    bench_spatialgan.bench_training_step("tiny", repeats=0)


def test_transfer_from_stylegan2_copies_every_stylegan2_weight(tmp_path):
  """init_from a StyleGAN2 dir: its G/D leaves land unchanged, the SEL layers stay fresh."""
  from flax import traverse_util

  from jaxspatial.models.spatialgan import transfer_from_stylegan2
  from jaxspatial.training.spatialgan import SpatialGANPlugin
  config = ml_collections.ConfigDict(load_config("tiny"))
  sg2_cfg = models.stylegan2_model_config(
      config.model.resolution, **{k: config.model[k] for k in (
          "z_dim", "w_dim", "n_mlp", "channel_base", "channel_max", "mbstd_group_size")})
  key = jax.random.key(7)
  g = families.build_generator(sg2_cfg)
  g_vars = jax.jit(g.init)(key, jnp.zeros((1, sg2_cfg.z_dim)))
  d_vars = jax.jit(families.build_discriminator(sg2_cfg).init)(
      key, jnp.zeros((1, sg2_cfg.resolution, sg2_cfg.resolution, 3)))
  checkpoint.save_model_dir(tmp_path / "sg2", {"g_ema": g_vars, "d": d_vars},
                            ml_collections.ConfigDict({"model": sg2_cfg}))
  plugin = SpatialGANPlugin(config, families.build_generator(config.model),
                            families.build_discriminator(config.model))
  out = plugin.init_models(str(tmp_path / "sg2"))
  src = traverse_util.flatten_dict(jax.tree.map(np.asarray, g_vars), sep="/")
  got = traverse_util.flatten_dict(jax.tree.map(np.asarray, out["g"]), sep="/")
  assert set(src) < set(got) and any("heatmap" in k or "sel" in k.lower() for k in set(got) - set(src))
  for k, v in src.items():
    np.testing.assert_array_equal(got[k], v)
  np.testing.assert_array_equal(jax.tree.leaves(out["d"])[0], jax.tree.leaves(d_vars)[0])
  first = sorted(src)[0]
  wrong = traverse_util.unflatten_dict({**src, first: np.zeros((3, 5))}, sep="/")
  with pytest.raises(UserError, match=f"does not fit this SpatialGAN config: {first}"):
    transfer_from_stylegan2(wrong, out["g"])
