"""Projection of images into StyleGAN2 / SSN / SpatialGAN (jaxspatial.edit.projection), PTI
(jaxspatial.edit.pti) and the project command, on tiny random generators (16 px)."""

import dataclasses
import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

import jaxspatial as js
from jaxspatial import families
from jaxspatial import models
from jaxspatial import checkpoint
from jaxspatial import drag as drag_cmd
from jaxspatial import edit_heatmap, imageio, resample
from jaxspatial import project as project_cmd
from jaxspatial.cli import UserError
from jaxspatial.edit import pti, projection
from jaxspatial.models import ssn as ssn_models
from jaxspatial.models.spatialgan import spatialgan_model_config

RES = 16
SMALL = dict(z_dim=8, w_dim=8, n_mlp=1, channel_base=64, channel_max=8)


def _save(root, name, cfg, g_init_args, with_d=False):
  key = jax.random.key(0)
  g = families.build_generator(cfg)
  variables = {"g_ema": jax.jit(g.init)({"params": key, "noise": key}, *g_init_args)}
  if with_d:
    d = families.build_discriminator(cfg)
    variables["d"] = jax.jit(d.init)(key, jnp.zeros((1, RES, RES, 3)))
  checkpoint.save_model_dir(root / name, variables, ml_collections.ConfigDict({"model": cfg}))
  return js.load(root / name)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
  return tmp_path_factory.mktemp("projection")


@pytest.fixture(scope="module")
def sg2(root):
  cfg = models.stylegan2_model_config(RES, **SMALL)
  return _save(root, "sg2", cfg, (jnp.zeros((1, 8)),), with_d=True)


@pytest.fixture(scope="module")
def recovered(sg2):
  """Two generated images (constant noise) and their 200-step MSE projections in W."""
  x = sg2.generate(sg2.sample_z(5, 2))
  return x, sg2.project(x, steps=200, loss="mse", seed=0)


# ------------------------------------------------------------------ the method's pieces


def test_learning_rate_schedule_matches_stylegan2_ada():
  cfg = projection.ProjectionConfig()
  lr = lambda t: float(projection.learning_rate(jnp.float32(t), cfg))
  assert lr(0.0) == 0.0 and abs(lr(1.0)) < 1e-9
  assert lr(0.025) == pytest.approx(0.05, rel=1e-5)          # linear warm-up over 5 %
  assert lr(0.5) == pytest.approx(0.1, rel=1e-6)             # plateau
  assert lr(0.875) == pytest.approx(0.1 * (0.5 - 0.5 * np.cos(0.5 * np.pi)), rel=1e-5)
  scale = lambda t: float(projection.latent_noise_scale(jnp.float32(t), 2.0, cfg))
  assert scale(0.0) == pytest.approx(0.1) and scale(0.75) == 0.0 and scale(0.9) == 0.0


def test_noise_regularizer_penalises_correlated_noise():
  rng = np.random.default_rng(0)
  white = [jnp.asarray(rng.standard_normal((1, r, r, 1)), jnp.float32) for r in (16, 32)]
  smooth = [jnp.asarray(np.repeat(np.repeat(rng.standard_normal((1, r // 2, r // 2, 1)), 2, 1),
                                  2, 2), jnp.float32) for r in (16, 32)]
  def direct(v):            # stylegan2-ada's loop: every scale down to 8 px, 2x2 average pools
    total = 0.0
    while True:
      total += np.mean(v * np.roll(v, 1, 2)) ** 2 + np.mean(v * np.roll(v, 1, 1)) ** 2
      if v.shape[1] <= 8:
        return total
      v = v.reshape(1, v.shape[1] // 2, 2, v.shape[2] // 2, 2, 1).mean(axis=(2, 4))
  want = sum(direct(np.asarray(v, np.float64)) for v in white)
  assert float(projection.noise_regularizer(white)[0]) == pytest.approx(want, rel=1e-4)
  assert float(projection.noise_regularizer(smooth)[0]) > 10 * float(
      projection.noise_regularizer(white)[0])
  normed = projection.normalize_noise(smooth)
  for m in normed:
    assert abs(float(m.mean())) < 1e-6 and float(jnp.mean(m * m)) == pytest.approx(1, rel=1e-5)


# ------------------------------------------------------------------ StyleGAN2


def test_projection_recovers_a_generated_image(recovered):
  """The target lies exactly in the generator's range (a W latent, the constant noise maps the
  projection starts from), so only optimisation error remains: 200 steps must reach 35 dB
  (RMS error < 1.8 % of the range), far above the start image's PSNR (the mean W)."""
  x, p = recovered
  start = p.snapshots[0][1]
  assert p.snapshots[0][0] == 0
  assert (projection.psnr(start, x) < 30).all()
  assert (p.psnr > 35).all(), p.psnr
  assert p.latent.shape == (2, 8) and p.ws.shape == (2, 6, 8)
  assert len(p.noise) == 5 and p.noise[-1].shape == (2, 16, 16, 1)


def test_projection_is_deterministic_and_per_image(sg2, recovered):
  x, p = recovered
  again = sg2.project(x[::-1], steps=200, loss="mse", seed=0)     # the batch reversed
  np.testing.assert_allclose(again.latent[::-1], p.latent, atol=1e-5)
  np.testing.assert_allclose(sg2.synthesize(p.ws, noise=p.noise), p.image, atol=1e-5)


def test_stop_ends_early_on_the_same_path_and_snapshots_stream(sg2, recovered):
  """``stop`` cuts the run short without changing its schedule, so the steps taken are those of
  the full run; ``on_snapshot`` sees each snapshot as it is taken."""
  x, full = recovered
  calls, seen = [], []
  p = sg2.project(x, steps=200, loss="mse", seed=0, callback=calls.append,
                  on_snapshot=lambda step, images, loss: seen.append((step, images, loss)),
                  stop=lambda: len(calls) >= 60)
  assert p.steps == 60 and calls == list(range(60))
  taken = [(s, img) for s, img in full.snapshots if 0 < s <= 60]
  assert [s for s, *_ in seen] == [s for s, _ in taken] and len(taken) >= 2
  for (_, images, loss), (_, want) in zip(seen, taken):
    np.testing.assert_allclose(images, want, atol=1e-5)
    assert loss.shape == (2,) and (loss > 0).all()


def test_noise_maps_render_as_the_noise_modes(sg2):
  ws = np.repeat(sg2.mapping(sg2.sample_z(1, 2))[:, None], sg2.num_ws, axis=1)
  for mode in ("const", "none"):
    np.testing.assert_allclose(sg2.synthesize(ws, noise=sg2.noise_maps(mode)),
                               sg2.synthesize(ws, noise=mode), atol=1e-6)
  a, b = sg2.noise_maps("random", 3), sg2.noise_maps("random", 3)
  assert [m.shape for m in a] == [(1, r, r, 1) for r in (4, 8, 8, 16, 16)]
  assert all((u == v).all() for u, v in zip(a, b))
  assert not (sg2.noise_maps("random", 4)[0] == a[0]).all()


def test_latent_npz_round_trip(sg2, recovered, tmp_path):
  _, p = recovered
  loaded = projection.load_projection(p.save(tmp_path / "latent.npz"), sg2)
  assert (loaded.kind, loaded.space, loaded.steps) == ("stylegan2", "w", 200)
  np.testing.assert_array_equal(loaded.ws, p.ws)
  for a, b in zip(loaded.noise, p.noise):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(UserError, match="not a latent.npz"):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    projection.load_projection(tmp_path / "other.npz")


def test_pti_lowers_the_loss_and_the_tuned_directory_loads(sg2, root):
  x = np.clip(sg2.generate(sg2.sample_z(9, 2)) * 0.5 + 0.3, -1, 1)   # off the generator's range
  p = sg2.project(x, steps=50, loss="mse")        # the batch shape of `recovered`: no recompile
  r = pti.pivotal_tuning(sg2, p, pti.PTIConfig(steps=30, loss="mse"))
  assert (r.loss_after < 0.8 * r.loss_before).all()
  assert (r.psnr > p.psnr).all()
  pti.save_tuned(sg2, r.g_vars, root / "tuned")
  tuned = js.load(root / "tuned")
  assert tuned.kind == "stylegan2" and tuned.d_vars is not None
  np.testing.assert_allclose(tuned.synthesize(p.ws, noise=p.noise), r.image, atol=1e-5)
  np.testing.assert_array_equal(tuned.g_vars["params"]["mapping"]["dense_1"]["weight"],
                                sg2.g_vars["params"]["mapping"]["dense_1"]["weight"])


def test_critic_loss_needs_a_discriminator(root):
  cfg = models.stylegan2_model_config(RES, **SMALL)
  m = _save(root, "g_only", cfg, (jnp.zeros((1, 8)),))
  with pytest.raises(UserError, match="discriminator"):
    m.project(np.zeros((RES, RES, 3)), steps=1, loss="critic")


# ------------------------------------------------------------------ SSN and SpatialGAN


def _block_change(a, b, grid=4):
  d = np.abs(a - b).mean(-1)[0]
  s = d.shape[0] // grid
  return d.reshape(grid, s, grid, s).mean(axis=(1, 3))


@pytest.fixture(scope="module")
def ssn_projection(root):
  """A random 4x4-grid SSN, a latent z, its image and the image's 100-step projection."""
  cfg = ssn_models.ssn_model_config(RES, grid=(4, 4), **SMALL)
  m = _save(root, "ssn", cfg, (jnp.zeros((1, 4, 4, 8)),))
  z = m.sample_z(3, 1)
  x = m.generate(z)
  p = m.project(x, steps=100, loss="mse")
  p.save(root / "ssn_latent.npz")
  return m, z, x, p


@pytest.fixture(scope="module")
def sgan_projection(root):
  """A random SpatialGAN, an image of it and the image's 40-step projection."""
  cfg = spatialgan_model_config(RES, sel_hidden=8, **SMALL)
  g = families.build_generator(cfg)
  m = _save(root, "sgan", cfg, (jnp.zeros((1, 8)), g.sample_heatmaps(jax.random.key(0), 1)))
  x = m.generate(m.sample_z(2, 1), heatmaps=m.sample_heatmaps(4, 1))
  p = m.project(x, steps=40, loss="mse", seed=1)
  p.save(root / "sgan_latent.npz")
  return m, x, p


def test_ssn_projection_then_resampling_changes_only_the_resampled_block(ssn_projection):
  """A random SSN has no distortion regulariser, so a block leaks into its neighbours through
  the convolutions' receptive field. The tolerance is that leakage itself: resampling the
  projection must change the other blocks no more than resampling the true latent does
  (x 1.5 + 0.02), while the resampled block changes a lot."""
  m, z, x, p = ssn_projection
  assert p.latent.shape == (1, 4, 4, 8) and p.ws.shape == (1, 6, 4, 4, 8)
  assert p.psnr[0] > 28
  ws = projection.resampled_ws(m, p, [(0, 0)], seed=7)
  change = _block_change(m.synthesize(ws, noise=p.noise), p.image)
  reference = _block_change(m.generate(m.resample(z, [(0, 0)], 7)), x)
  outside = np.ones((4, 4), bool)
  outside[0, 0] = False
  assert change[0, 0] > 0.1
  assert (change[outside] <= 1.5 * reference[outside] + 0.02).all(), (change, reference)
  assert change[3, 3] < 0.1 * change[0, 0]
  again = projection.resampled_projection(m, projection.resampled_projection(m, p, [(0, 0)], 7),
                                         [(3, 3)], 8)               # a resample resamples again
  kept = np.abs(again.latent - p.latent).max(-1)[0] == 0
  assert kept.sum() == 14 and not kept[0, 0] and not kept[3, 3]
  np.testing.assert_allclose(again.ws, projection.resampled_ws(
      m, dataclasses.replace(p, latent=again.latent), [], 0), atol=1e-6)


def test_spatialgan_projection_returns_heatmaps_that_render_the_projection(sgan_projection):
  m, x, p = sgan_projection
  start = m.sample_heatmaps(1, 1)
  assert p.heatmaps.levels == start.levels
  assert np.abs(p.heatmaps.centers - start.centers).max() > 1e-4      # the centres moved
  np.testing.assert_allclose(m.synthesize(p.ws, heatmaps=p.heatmaps, noise=p.noise), p.image,
                             atol=1e-5)
  assert p.psnr[0] > projection.psnr(p.snapshots[0][1], x)[0]


# ------------------------------------------------------------------ the command


@pytest.fixture(scope="module")
def images(root):
  rng = np.random.default_rng(0)
  files = {"rgb": root / "photo.png", "grey": root / "grey.png", "rgba": root / "rgba.png",
           "text": root / "text.png"}
  Image.fromarray(rng.integers(0, 255, (24, 20, 3), np.uint8)).save(files["rgb"])
  Image.fromarray(rng.integers(0, 255, (RES, RES), np.uint8)).save(files["grey"])
  Image.fromarray(rng.integers(0, 255, (RES, RES, 4), np.uint8)).save(files["rgba"])
  files["text"].write_text("not an image")
  return files


@pytest.mark.parametrize("which, message", [
    ("missing", "no such file"), ("text", "not a readable image"),
    ("grey", "has 1 channel"), ("rgba", "has 4 channel")])
def test_command_errors_are_one_line_exit_2(sg2, root, images, capsys, which, message):
  image = images.get(which, root / "missing.png")
  out = root / f"out_{which}"
  with pytest.raises(SystemExit) as e:
    project_cmd.cli.run(lambda: project_cmd.main(
        ["--checkpoint", str(root / "sg2"), "--image", str(image), "--out", str(out)]))
  assert e.value.code == 2
  err = capsys.readouterr().err.strip()
  assert message in err and err.startswith("error: ") and "\n" not in err
  assert not out.exists()


def test_other_sizes_are_cropped_and_resized_with_a_notice(images):
  x, notice = project_cmd.load_target(str(images["rgb"]), RES)
  assert x.shape == (RES, RES, 3) and -1 <= x.min() and x.max() <= 1
  assert "centre-cropped to 20x20 and resized to 16x16" in notice
  assert project_cmd.load_target(str(images["rgb"]), 20)[1] is not None


def test_lpips_without_weights_is_a_user_error(sg2, tmp_path, monkeypatch):
  monkeypatch.setenv("JAXSPATIAL_HOME", str(tmp_path))
  with pytest.raises(UserError, match="--loss critic"):
    sg2.project(np.zeros((RES, RES, 3)), steps=1, loss="lpips")


def test_loss_auto_takes_lpips_else_the_critic_else_mse(sg2, tmp_path, monkeypatch):
  """The rule of ``project``'s default and the studio's loss menu: without it the command stopped
  offline with "missing lpips-vgg.npz"."""
  monkeypatch.setenv("JAXSPATIAL_HOME", str(tmp_path))
  loss, notice = projection.resolve_loss(sg2)
  assert loss == "critic" and notice.startswith("note: no LPIPS weights installed")
  assert "convert_torch --net lpips-vgg" in notice and "\n" not in notice
  generator_only = types.SimpleNamespace(d_vars=None)
  assert projection.resolve_loss(generator_only)[0] == "mse"
  assert projection.available_losses(sg2) == ("critic", "mse")
  assert projection.resolve_loss(sg2, "mse") == ("mse", None)
  p = sg2.project(np.zeros((RES, RES, 3)), steps=1)           # the API's default is auto too
  tuned = pti.pivotal_tuning(sg2, p, pti.PTIConfig(steps=1))
  np.testing.assert_allclose(tuned.loss_before, p.loss + pti.PTIConfig.mse_weight * np.mean(
      np.square(p.image - p.target), axis=(1, 2, 3)), rtol=1e-3)   # D = the critic distance
  (tmp_path / "lpips-vgg.npz").write_bytes(b"")
  assert projection.resolve_loss(sg2) == ("lpips", None)
  assert projection.available_losses(generator_only) == ("lpips", "mse")


def test_the_command_projects_offline_by_default(sg2, root, images, tmp_path, monkeypatch,
                                                 capsys):
  monkeypatch.setenv("JAXSPATIAL_HOME", str(tmp_path))
  project_cmd.main(["--checkpoint", str(root / "sg2"), "--image", str(images["rgb"]),
                    "--steps", "1", "--out", str(tmp_path / "proj")])
  out = capsys.readouterr().out
  assert "note: no LPIPS weights installed, so projecting with the critic" in out
  assert "(w, critic, 1 steps" in out and (tmp_path / "proj" / "latent.npz").is_file()


# ------------------------------------------------------------------ edits of a projection


def test_resample_command_takes_a_projection(ssn_projection, root):
  m, _, _, p = ssn_projection
  resample.main(["--checkpoint", str(root / "ssn"), "--latent", str(root / "ssn_latent.npz"),
                 "--blocks", "0,0", "--num", "2", "--out", str(root / "strip.png"),
                 "--save-npy", str(root / "strip.npy")])
  images = np.load(root / "strip.npy")
  np.testing.assert_allclose(images[0], p.image[0], atol=1e-5)
  want = m.synthesize(projection.resampled_ws(m, p, [(0, 0)], seed=1), noise=p.noise)
  np.testing.assert_allclose(images[1], want[0], atol=1e-5)


def test_edit_heatmap_command_moves_a_projected_heatmap(sgan_projection, root, capsys):
  m, _, p = sgan_projection
  args = edit_heatmap.parse_args(["--checkpoint", str(root / "sgan"), "--latent",
                                  str(root / "sgan_latent.npz"), "--move", "0:0.3,0",
                                  "--no-centres", "--size", "16", "--out", str(root / "e.png")])
  picture = edit_heatmap.edit_picture(m, args)
  before = picture[2:18, 2:18]
  moved = m.synthesize(p.ws, p.heatmaps.move(0, 0.3, 0.0), noise=p.noise)[0]
  np.testing.assert_array_equal(before, imageio.to_uint8(p.image[0]))
  np.testing.assert_array_equal(picture[2:18, 20:36], imageio.to_uint8(moved))
  with pytest.raises(UserError, match="restyle"):
    edit_heatmap.edit_picture(m, edit_heatmap.parse_args(
        ["--checkpoint", "x", "--latent", str(root / "sgan_latent.npz"), "--restyle", "0",
         "--out", "x.png"]))


def test_drag_starts_from_a_projection(sg2, recovered, sgan_projection, root):
  _, p = recovered
  p.save(root / "sg2_latent.npz")
  args = drag_cmd.parse_args(["--checkpoint", "x", "--latent", str(root / "sg2_latent.npz"),
                              "--handle", "1,1", "--target", "1,2", "--out", "x.png"])
  ws, kw = drag_cmd.start_latent(sg2, args)
  np.testing.assert_array_equal(ws, p.ws[:1])
  np.testing.assert_allclose(sg2.synthesize(ws, **kw), p.image[:1], atol=1e-5)
  with pytest.raises(UserError, match="spatialgan"):
    drag_cmd.start_latent(sg2, drag_cmd.parse_args(
        ["--checkpoint", "x", "--latent", str(root / "sgan_latent.npz"), "--handle", "1,1",
         "--target", "1,2", "--out", "x.png"]))
