"""RegressorModel (js.load of a regressor dir) and the composite / inpaint / edit_attribute
commands, end to end on a tiny random regressor bundled with a tiny random StyleGAN2."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

import jaxspatial as js
from jaxspatial import cli
from jaxspatial import composite as composite_cmd
from jaxspatial import edit_attribute as edit_cmd
from jaxspatial import inpaint as inpaint_cmd
from jaxspatial import families
from jaxspatial import models as models_lib
from jaxspatial import checkpoint
from jaxspatial.api.regressor import RegressorModel
from jaxspatial.cli import UserError
from jaxspatial.models import regressor as R

RES = 16


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
  """{"reg": regressor dir, "rgb": an RGB-only one, "g": generator-only dir, "no_g": regressor
  without G, pngs...}."""
  root = tmp_path_factory.mktemp("regressor")
  g_cfg = models_lib.stylegan2_model_config(RES, z_dim=32, w_dim=32, n_mlp=2, channel_base=256,
                                            channel_max=32)
  generator = families.build_generator(g_cfg)
  g_vars = jax.jit(generator.init)({"params": jax.random.key(0)}, jnp.zeros((1, 32)))
  model_cfg = R.regressor_model_config(g_cfg, depth=18, width=8)
  e_vars = R.init_regressor(model_cfg, jax.random.key(1))
  cfg = ml_collections.ConfigDict({"model": model_cfg, "loss": {"lpips_weight": 0.0}})
  rgb_cfg = R.regressor_model_config(g_cfg, depth=18, width=8, use_mask=False)
  rgb_vars = R.init_regressor(rgb_cfg, jax.random.key(2))
  out = {k: root / k for k in ("reg", "g", "no_g", "rgb")}
  checkpoint.save_model_dir(out["reg"], {"e": e_vars, "g_ema": g_vars}, cfg)
  checkpoint.save_model_dir(out["rgb"], {"e": rgb_vars, "g_ema": g_vars},
                            ml_collections.ConfigDict({"model": rgb_cfg,
                                                       "loss": {"lpips_weight": 0.0}}))
  checkpoint.save_model_dir(out["no_g"], {"e": e_vars}, cfg)
  checkpoint.save_model_dir(out["g"], {"g_ema": g_vars},
                            ml_collections.ConfigDict({"model": g_cfg}))

  rng = np.random.default_rng(0)
  for i in range(3):
    Image.fromarray(rng.integers(0, 256, (RES, RES, 3), np.uint8)).save(root / f"x{i}.png")
  Image.fromarray(rng.integers(0, 256, (2 * RES, 2 * RES, 3), np.uint8)).save(root / "big.png")
  top = np.zeros((RES, RES), np.uint8)
  top[:RES // 2] = 255
  Image.fromarray(top).save(root / "top.png")
  Image.fromarray(255 - top).save(root / "bottom.png")
  Image.fromarray(np.kron(top, np.ones((2, 2), np.uint8))).save(root / "top_big.png")
  grey = top.copy()
  grey[0, 0] = 128
  Image.fromarray(grey).save(root / "grey.png")
  Image.fromarray(np.zeros((RES + 1, RES), np.uint8)).save(root / "odd.png")
  out["root"] = root
  return out


@pytest.fixture(scope="module")
def model(dirs) -> RegressorModel:
  return js.load(dirs["reg"])


@pytest.fixture(scope="module")
def images(model):
  return model.generate(model.sample_z(0, 3))


def _half_masks(n):
  m = np.zeros((n, RES, RES, 1), np.float32)
  m[:, :RES // 2] = 1
  return m


# ---------------------------------------------------------------------------- API


def test_load_gives_a_ready_regressor(model, images):
  assert isinstance(model, RegressorModel) and model.kind == "regressor"
  assert (model.resolution, model.num_ws, model.w_dim) == (RES, 6, 32)
  assert images.shape == (3, RES, RES, 3)
  ws = model.invert(images, _half_masks(3))
  assert ws.shape == (3, 6, 32) and np.isfinite(ws).all()
  np.testing.assert_allclose(model.synthesize(ws), model.inpaint(images, _half_masks(3)),
                             atol=1e-4)


def test_composite_edit_and_variation_map(model, images):
  m = _half_masks(3)
  parts = [(images, 1 - m), (images[::-1], m)]
  collage, union = model.collage(parts)
  np.testing.assert_array_equal(union, np.ones_like(union))
  np.testing.assert_array_equal(collage[:, RES // 2:], images[:, RES // 2:])
  np.testing.assert_array_equal(collage[:, :RES // 2], images[::-1, :RES // 2])
  out = model.composite(parts)
  np.testing.assert_allclose(out, model.inpaint(collage, union), atol=1e-5)
  # No change in the example -> no change in the target: G(E(x2)).
  np.testing.assert_allclose(model.edit(images[:1], images[:1], images), model.inpaint(images),
                             atol=1e-4)
  assert not np.allclose(model.edit(images[:1], images[1:2], images), model.inpaint(images),
                         atol=1e-3)
  v = model.variation_map([(images[:1], np.ones_like(m[:1])), (images[1:2], m[:1])], 1,
                          (images, m))
  assert v.composites.shape == (3, RES, RES, 3) and v.variance.shape == (RES, RES)
  np.testing.assert_array_equal(v.changed, m[0, ..., 0])
  assert v.leakage == pytest.approx(np.mean((1 - m[0, ..., 0]) * v.variance))
  same = model.variation_map([(images[:1], m[:1])], 0, (np.repeat(images[:1], 2, 0),
                                                        np.repeat(m[:1], 2, 0)))
  assert same.leakage == pytest.approx(0.0, abs=1e-10)


def test_finetune_adapts_a_copy(model, images):
  m = _half_masks(1)
  tuned = model.finetune(images[:1], m, steps=2, lpips_weight=0.0, show_progress=False)
  before, after = model.e_vars["params"], tuned.e_vars["params"]
  assert not np.allclose(before["conv1"]["kernel"], after["conv1"]["kernel"])
  assert tuned.e_vars["batch_stats"] is model.e_vars["batch_stats"]   # running stats kept
  assert not np.allclose(tuned.inpaint(images[:1], m), model.inpaint(images[:1], m))
  np.testing.assert_array_equal(js.load(model.path).e_vars["params"]["conv1"]["kernel"],
                                before["conv1"]["kernel"])


def test_finetune_with_lpips_needs_its_weights(model, images, tmp_path, monkeypatch):
  monkeypatch.setenv("JAXSPATIAL_HOME", str(tmp_path))
  with pytest.raises(UserError, match="lpips_weight=0"):
    model.finetune(images[:1], steps=1)


def test_bad_arrays_are_user_errors(model, images):
  m = _half_masks(3)
  with pytest.raises(UserError, match="shape"):
    model.inpaint(images, m[:, :8])
  with pytest.raises(UserError, match="not binary"):
    model.inpaint(images, m * 0.5)
  with pytest.raises(UserError, match="16 px generator"):
    model.inpaint(np.zeros((1, 8, 8, 3)))
  with pytest.raises(UserError, match="shape"):
    model.invert(np.zeros((1, 8, 8, 4)))
  with pytest.raises(UserError, match="same number"):
    model.composite([(images, m), (images[:1], m[:1])])
  with pytest.raises(UserError, match="out of range"):
    model.variation_map([(images[:1], m[:1])], 2, (images, m))


# ---------------------------------------------------------------------------- commands


def _png(path):
  with Image.open(path) as im:
    return np.asarray(im)


def test_commands_end_to_end(dirs):
  root, reg = dirs["root"], str(dirs["reg"])
  composite_cmd.main(["--checkpoint", reg, "--part", f"{root}/x0.png:{root}/bottom.png",
                      "--part", f"{root}/x1.png:{root}/top.png", "--out", f"{root}/comp.png",
                      "--collage", f"{root}/collage.png"])
  assert _png(root / "comp.png").shape == (RES, RES, 3)
  collage = _png(root / "collage.png")
  np.testing.assert_array_equal(collage[:RES // 2], _png(root / "x1.png")[:RES // 2])
  inpaint_cmd.main(["--checkpoint", reg, "--image", f"{root}/big.png", "--mask",
                    f"{root}/top_big.png", "--out", f"{root}/inp.png", "--paste",
                    "--finetune", "1", "--finetune-lpips", "0"])
  assert _png(root / "inp.png").shape == (RES, RES, 3)
  edit_cmd.main(["--checkpoint", reg, "--source", f"{root}/x0.png", "--edited",
                 f"{root}/x1.png", "--target", f"{root}/x2.png", "--target", f"{root}/x0.png",
                 "--out", f"{root}/edit.png"])
  assert _png(root / "edit.png").shape == (RES + 4, 2 * RES + 6, 3)   # a padded row of 2


@pytest.mark.parametrize("case,message", [
    ("size", "must have its image's size"),
    ("grey", "not a binary mask"),
    ("no_g", "no generator"),
    ("stylegan2", "needs a regressor checkpoint"),
    ("missing", "does not exist"),
])
def test_command_errors_are_one_line(dirs, capsys, case, message):
  root = dirs["root"]
  ckpt = {"no_g": dirs["no_g"], "stylegan2": dirs["g"], "missing": root / "nothing"}.get(
      case, dirs["reg"])
  mask = {"size": "odd.png", "grey": "grey.png"}.get(case, "top.png")
  argv = ["--checkpoint", str(ckpt), "--image", f"{root}/x0.png", "--mask", f"{root}/{mask}",
          "--out", f"{root}/never.png"]
  with pytest.raises(SystemExit) as exit_info:
    cli.run(lambda: inpaint_cmd.main(argv))
  assert exit_info.value.code == 2
  err = capsys.readouterr().err
  assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
  assert not (root / "never.png").exists()


def test_command_exit_status_in_a_real_process(dirs):
  root = dirs["root"]
  proc = subprocess.run(
      [sys.executable, "-m", "jaxspatial.composite", "--checkpoint", str(dirs["reg"]),
       "--part", f"{root}/x0.png:{root}/grey.png", "--out", f"{root}/never.png"],
      capture_output=True, text=True, env={**os.environ, "JAX_PLATFORMS": "cpu"}, timeout=120)
  assert proc.returncode == 2
  assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr


@pytest.mark.slow
def test_bench_composite_table():
  """Smoke test at tiny size: the table's rows and columns (timings are the benchmark's job)."""
  from jaxspatial.benchmarks.regressor import bench_composite
  rows = bench_composite(16, channel_base=256, channel_max=32, w_dim=32, depth=18, width=8,
                         opt_steps=10, measure_steps=1, repeats=1)
  assert [r["method"].split(":")[0] for r in rows] == ["regressor composite", "optimisation"]
  assert all({"method", "seconds_per_image", "measured"} <= set(r) for r in rows)
  assert "speedup" in rows[1]


# ---------------------------------------------------------------------------- comparison


@pytest.fixture(scope="module")
def critic_dir(dirs):
  """A StyleGAN2 dir with a (random) discriminator at the regressor's resolution."""
  cfg = js.load(dirs["g"]).config
  d = families.build_discriminator(cfg.model)
  d_vars = jax.jit(d.init)(jax.random.key(2), jnp.zeros((1, RES, RES, 3)))
  g_vars = checkpoint.restore_models(dirs["g"])["g_ema"]
  path = dirs["root"] / "critic"
  checkpoint.save_model_dir(path, {"g_ema": g_vars, "d": d_vars}, cfg)
  return path


def test_critic_fd_is_zero_on_one_set_and_positive_between_sets(critic_dir):
  from jaxspatial.metrics.critic import critic_fd
  from jaxspatial.nets import critic as critic_lib
  critic = critic_lib.critic_from_model(js.load(critic_dir))
  rng = np.random.default_rng(3)
  a = rng.uniform(-1, 1, (40, RES, RES, 3)).astype(np.float32)
  assert critic.features(a).shape == (40, critic.dim)
  assert abs(critic_fd(critic, a, a, batch_size=16)) < 1e-6
  assert critic_fd(critic, a, 0.2 * a + 0.5) > 1e-3
  with pytest.raises(UserError, match="no discriminator"):
    critic_lib.critic_from_model(js.load(critic_dir.parent / "g"))
  with pytest.raises(UserError, match="no block features"):
    critic_lib.critic_from_model(js.load(critic_dir), resolutions=(RES,))


def test_compare_composites_table_and_picture(dirs, critic_dir, tmp_path, capsys):
  import json

  from jaxspatial import compare_composites
  out, table = tmp_path / "cmp.png", tmp_path / "cmp.json"
  compare_composites.main(["--regressor", f"RGBM={dirs['reg']}", "--regressor",
                           f"RGB={dirs['rgb']}", "--rgb-fill", "--critic", str(critic_dir),
                           "--num", "8", "--show", "4", "--out", str(out), "--json", str(table),
                           "--bootstrap", "4"])
  rows = {r["method"]: r for r in json.loads(table.read_text())}
  assert set(rows) == {"real scenes (reference)", "generator samples (reference)",
                       "pixel paste", "RGBM", "RGB", "RGB fill"}    # no fill row for RGBM
  assert rows["pixel paste"]["masked_l1"] == 0.0 and rows["RGBM"]["masked_l1"] > 0
  assert all(np.isfinite(r["critic_fd"]) and r["density"] >= 0 and 0 <= r["coverage"] <= 1
             for r in rows.values())
  assert rows["RGB fill"]["masked_l1"] != rows["RGB"]["masked_l1"]   # another input
  # Standard errors: pixel paste's L1 is 0 in every resample; the others vary; no L1 for
  # the reference rows.
  assert rows["pixel paste"]["masked_l1_se"] == 0.0 and rows["RGBM"]["masked_l1_se"] > 0
  assert rows["RGBM"]["critic_fd_se"] > 0
  assert "masked_l1_se" not in rows["real scenes (reference)"]
  assert _png(out).shape[0] >= 4 * 96                 # collages + three composite rows, upscaled
  assert "| pixel paste | 0.0000 ± 0.0000 |" in capsys.readouterr().out
  with pytest.raises(UserError, match="NAME=DIR"):
    compare_composites.main(["--regressor", str(dirs["reg"]), "--critic", str(critic_dir)])
  with pytest.raises(UserError, match="--bootstrap"):
    compare_composites.main(["--regressor", f"RGBM={dirs['reg']}", "--critic", str(critic_dir),
                             "--bootstrap", "-1"])
