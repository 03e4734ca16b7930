"""DragGAN point dragging (jaxspatial.edit.drag) and its command, with SpatialGAN's coarse
centre move: the pieces against direct definitions, the loop's contract on tiny random
generators, and the command's errors."""

import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from PIL import Image

import jaxspatial as js
from jaxspatial import drag as drag_cmd
from jaxspatial import families
from jaxspatial import models
from jaxspatial import checkpoint
from jaxspatial.cli import UserError
from jaxspatial.edit import drag
from jaxspatial.models import heatmaps as hm
from jaxspatial.models.spatialgan import spatialgan_model_config

RES = 16


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
  """Random 16-px StyleGAN2 and SpatialGAN model dirs."""
  root = tmp_path_factory.mktemp("drag")
  key = jax.random.key(0)
  sg2_cfg = models.stylegan2_model_config(RES, z_dim=16, w_dim=16, n_mlp=1, channel_base=128,
                                          channel_max=16)
  g = families.build_generator(sg2_cfg)
  g_vars = jax.jit(g.init)(key, jnp.zeros((1, 16)))
  checkpoint.save_model_dir(root / "sg2", {"g_ema": g_vars},
                            ml_collections.ConfigDict({"model": sg2_cfg}))
  sp_cfg = spatialgan_model_config(RES, z_dim=16, w_dim=16, n_mlp=1, channel_base=128,
                                   channel_max=16, sel_hidden=8)
  g = families.build_generator(sp_cfg)
  h = g.sample_heatmaps(key, 1)
  sp_vars = jax.jit(g.init)({"params": key, "noise": key}, jnp.zeros((1, 16)), h)
  checkpoint.save_model_dir(root / "sgan", {"g_ema": sp_vars},
                            ml_collections.ConfigDict({"model": sp_cfg}))
  return root


def test_radii_follow_the_image_size():
  assert drag.radii(512) == (3.0, 12.0, 2.0)
  assert drag.radii(1024) == (6.0, 24.0, 4.0)
  r1, r2, stop = drag.radii(32)
  assert (r1, r2, stop) == (3 * 32 / 512, 1.0, 2.0)


def test_disk_offsets():
  assert drag.disk_offsets(0.2).tolist() == [[0.0, 0.0]]
  off = drag.disk_offsets(1.5)
  assert len(off) == 9 and (np.abs(off) <= 1).all()
  assert len(drag.disk_offsets(3.0)) == 29          # lattice points in a radius-3 disk


def test_bilinear_sample_matches_the_definition():
  rng = np.random.default_rng(0)
  feat = rng.normal(size=(6, 7, 3)).astype(np.float32)
  got = np.asarray(drag.bilinear_sample(jnp.asarray(feat), jnp.asarray([[2.0, 3.0], [2.25, 4.5]])))
  np.testing.assert_allclose(got[0], feat[2, 3], rtol=1e-6)
  want = (0.75 * (0.5 * feat[2, 4] + 0.5 * feat[2, 5]) + 0.25 * (0.5 * feat[3, 4] + 0.5 * feat[3, 5]))
  np.testing.assert_allclose(got[1], want, rtol=1e-5)


def test_motion_supervision_on_a_ramp():
  """F(y, x) = x: a unit step toward the target changes F by exactly 1 per handle."""
  feat = jnp.broadcast_to(jnp.arange(12.0)[None, :, None], (12, 12, 2))
  handles = jnp.asarray([[5.0, 5.0], [2.0, 8.0]])
  targets = jnp.asarray([[5.0, 9.0], [2.0, 1.0]])       # right, then left
  loss = drag.motion_supervision_loss(feat, handles, targets, jnp.asarray(drag.disk_offsets(1.0)))
  np.testing.assert_allclose(loss, 2.0, rtol=1e-6)
  # the gradient pulls F ahead of the handle toward F at the handle (the stop-gradient side)
  grad = jax.grad(lambda f: drag.motion_supervision_loss(
      f, handles[:1], targets[:1], jnp.zeros((1, 2))))(feat)
  assert float(grad[5, 6].sum()) > 0 and float(grad[5, 5].sum()) == 0


def test_track_points_finds_the_reference_feature_within_the_window():
  feat = np.zeros((10, 10, 4), np.float32)
  ref = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
  feat[6, 3] = ref
  feat[0, 9] = ref                                      # identical but outside the window
  got = drag.track_points(jnp.asarray(feat), jnp.asarray(ref[None]), jnp.asarray([[5.2, 4.4]]), 2.0)
  assert np.asarray(got).tolist() == [[6, 3]]


def test_coarse_move_shifts_near_roots_with_their_children():
  h = hm.sample(jax.random.key(1), 1, "hierarchical").numpy()
  root = h.level_indices(0)[0]
  size = 33
  centre_px = h.pixel_centers(size)[0, root]
  moved = drag.coarse_move(h, centre_px[None], centre_px[None] + [0.0, 8.0], size,
                           alpha=0.5, radius=0.3)
  shift = np.asarray(moved.centers - h.centers)[0]
  np.testing.assert_allclose(shift[:, 0], 0.0, atol=1e-6)
  np.testing.assert_allclose(shift[:, 1], 0.5 * 8.0 * 2 / (size - 1), rtol=1e-5)  # all follow
  far = drag.coarse_move(h, np.clip(centre_px[None] + 16, 0, size - 1),
                         np.clip(centre_px[None] + 16, 0, size - 1) + [0.0, 1.0], size, 1.0,
                         radius=0.05)
  np.testing.assert_array_equal(far.centers, h.centers)


def test_drag_contract_on_stylegan2(dirs):
  m = js.load(dirs / "sg2")
  ws = np.repeat(m.mapping(m.sample_z(3, 1))[:, None], m.num_ws, axis=1)
  seen = []
  result = drag.drag(m, ws, [[4, 4]], [[4, 11]], config=drag.DragConfig(max_steps=3, lr=0.05),
                     callback=lambda step, p: seen.append(step))
  assert seen == [0, 1, 2] and result.steps == 3 and not result.converged
  assert len(result.path) == 4 and result.handles.shape == (1, 2)
  assert result.heatmaps is None
  np.testing.assert_array_equal(result.ws[:, 6:], ws[:, 6:])      # only the first 6 rows move
  assert np.abs(result.ws[:, :6] - ws[:, :6]).max() > 0
  np.testing.assert_allclose(result.image, m.synthesize(result.ws)[0], atol=1e-5)
  arrived = drag.drag(m, ws, [[4, 4]], [[4, 5]])                  # within 2 px: nothing to do
  assert arrived.converged and arrived.steps == 0
  np.testing.assert_array_equal(arrived.ws, ws)


def test_drag_spatialgan_moves_centres_and_latent(dirs):
  m = js.load(dirs / "sgan")
  h = m.sample_heatmaps(2, 1)
  ws = np.repeat(m.mapping(m.sample_z(2, 1), h)[:, None], m.num_ws, axis=1)
  root = h.level_indices(0)[0]
  p = np.round(h.pixel_centers(RES)[0, root])[None]
  t = np.clip(p + [0, 6], 0, RES - 1)
  config = drag.DragConfig(max_steps=2)
  coarse_only = drag.drag(m, ws, p, t, heatmaps=h, config=config, optimise_centers=False)
  dx = np.asarray(coarse_only.heatmaps.centers - h.centers)[0, root, 1]
  np.testing.assert_allclose(dx, (t - p)[0, 1] * 2 / (RES - 1), rtol=1e-5)
  joint = drag.drag(m, ws, p, t, heatmaps=h, config=config, coarse=False)
  assert np.abs(joint.heatmaps.centers - h.centers).max() > 0        # optimised with the latent
  np.testing.assert_allclose(joint.image, m.synthesize(joint.ws, joint.heatmaps)[0], atol=1e-5)
  with pytest.raises(UserError, match="needs the image's heatmaps"):
    drag.drag(m, ws, p, t)


def test_joint_optimisation_alternates_latent_and_centres(dirs):
  """The paper's schedule (§5, Fig. 12): step 1 moves the latent only, step 2 the centres
  only; ``alternate=False`` moves both on the first step."""
  m = js.load(dirs / "sgan")
  h = m.sample_heatmaps(3, 1)
  ws = np.repeat(m.mapping(m.sample_z(3, 1), h)[:, None], m.num_ws, axis=1)
  p = np.round(h.pixel_centers(RES)[0, h.level_indices(0)[0]])[None]
  t = np.clip(p + [0, 6], 0, RES - 1)
  run = drag.Dragger(m, drag.DragConfig()).start(ws, p, t, heatmaps=h, coarse=False)
  snapshots = [(np.asarray(run.params["ws"]), np.asarray(run.params["centers"]))]
  for _ in range(2):
    run.step()
    snapshots.append((np.asarray(run.params["ws"]), np.asarray(run.params["centers"])))
  (w0, c0), (w1, c1), (w2, c2) = snapshots
  assert np.abs(w1 - w0).max() > 0 and np.array_equal(c1, c0)
  assert np.array_equal(w2, w1) and np.abs(c2 - c1).max() > 0
  both = drag.Dragger(m, drag.DragConfig(alternate=False)).start(ws, p, t, heatmaps=h,
                                                                  coarse=False)
  both.step()
  assert np.abs(np.asarray(both.params["ws"]) - w0).max() > 0
  assert np.abs(np.asarray(both.params["centers"]) - c0).max() > 0


def test_drag_input_errors(dirs):
  m = js.load(dirs / "sg2")
  ws = np.zeros((1, m.num_ws, m.w_dim), np.float32)
  for handles, targets, message in (([[1, 1]], [[1, 2], [3, 3]], "1 handle"),
                                    ([[1, 99]], [[1, 2]], "must lie in"),
                                    ([], [], "at least one")):
    with pytest.raises(UserError, match=message):
      drag.drag(m, ws, handles, targets)
  with pytest.raises(UserError, match="W\\+ of one image"):
    drag.drag(m, ws[:, :3], [[1, 1]], [[1, 5]])


def test_drag_command(dirs, tmp_path, capsys):
  out = tmp_path / "drag.png"
  drag_cmd.main(["--checkpoint", str(dirs / "sgan"), "--seed", "1", "--handle", "4,4",
                 "--target", "4,10", "--steps", "2", "--size", "64", "--out", str(out)])
  with Image.open(out) as im:
    assert im.size == (2 * 66 + 2, 68)
  captured = capsys.readouterr()
  assert "after 2 steps" in captured.out
  assert re.search(r"handle 1 \(4,4\) -> \(4,10\): asked 6\.0 px, tracked [\d.]+ px; (the content "
                   r"under it moved [\d.]+ px|its patch is too uniform)", captured.out), captured.out
  mask = tmp_path / "mask.png"
  Image.fromarray(np.zeros((RES + 2, RES), np.uint8)).save(mask)
  for bad, message in ((["--handle", "1,1", "--target", "1,2", "--target", "2,2"], "in pairs"),
                       (["--handle", "1,1", "--target", "1,2", "--mask", str(mask)], "--mask is"),
                       (["--handle", "1,40", "--target", "1,2"], "must lie in")):
    with pytest.raises(UserError, match=message):
      drag_cmd.main(["--checkpoint", str(dirs / "sg2"), "--out", str(out), *bad])


def _scene(disc_centre=None, size=32):
  """A flat sky with, optionally, a red disc of radius 5 at ``disc_centre``: (H, W, 3) in
  [-1, 1]."""
  x = np.full((size, size, 3), [-0.2, 0.1, 0.8])
  if disc_centre is not None:
    rows, cols = np.mgrid[0:size, 0:size]
    x[np.hypot(rows - disc_centre[0], cols - disc_centre[1]) <= 5] = [0.9, -0.8, -0.8]
  return x


def test_report_on_uniform_sky_warns_and_sees_nothing_move():
  """The issue's case: tracking "converged" 8 px away while the image did not change."""
  sky = _scene()
  (r,) = drag.report(sky, sky, [[8, 11]], [[8, 19]], [[8, 18]])
  assert r.uniform and r.unchanged and r.content == 0 and r.tracked == 7 and r.asked == 8
  lines = drag.report_warnings(1, np.array([8, 11]), r, converged=True)
  assert len(lines) == 2 and "nearly uniform region" in lines[0] and "moved nothing" in lines[1]
  assert "too uniform to measure" in drag.describe_report(1, np.array([8, 11]), np.array([8, 19]), r)


def test_report_measures_a_moved_and_a_recoloured_object():
  before = _scene((16, 10))
  (moved,) = drag.report(before, _scene((16, 16)), [[16, 13]], [[16, 19]], [[16, 19]])
  assert not moved.uniform and not moved.unchanged
  assert moved.content == 6 and moved.match_error < 1e-9
  assert drag.report_warnings(1, np.array([16, 13]), moved, converged=True) == []
  recoloured = _scene((16, 10))
  recoloured[recoloured[..., 0] > 0.5] = [-0.8, 0.9, -0.8]            # red disc -> green disc
  (r,) = drag.report(before, recoloured, [[16, 13]], [[16, 19]], [[16, 19]])
  assert not r.unchanged and r.content == 0 and r.match_error > 0.3    # changed, did not move
  (line,) = drag.report_warnings(1, np.array([16, 13]), r, converged=True)
  assert "moved only 0.0 of 6.0 px" in line and "rather than moving it" in line
  assert drag.report_warnings(1, np.array([16, 13]), r, converged=False) == []


@pytest.mark.slow
def test_drag_benchmark_reports_both_modes(dirs):
  from jaxspatial.benchmarks import spatialgan as bench_spatialgan
  rows = bench_spatialgan.bench_drag(js.load(dirs / "sgan"), num=1, max_steps=2)
  assert [r["mode"] for r in rows] == ["draggan", "spatialgan + draggan"]
  assert all(0 <= r["mean_steps"] <= 2 and {"converged", "final_distance_px", "seconds"} <= set(r)
             for r in rows)


def test_drag_report_benchmark_rows_and_counts(dirs):
  from jaxspatial.benchmarks import drag_report
  rows = drag_report.measure(js.load(dirs / "sg2"), num=2, seed=0, distance=(2.0, 3.0),
                             max_steps=2)
  assert [r["seed"] for r in rows] == [0, 1] and all(0 <= r["steps"] <= 2 for r in rows)
  s = drag_report.summary(rows)
  assert s["drags"] == 2
  assert s["warned_no_ops"] + s["warned_but_moved"] == s["uniform_warnings"]
  assert s["warned_no_ops"] + s["unwarned_no_ops"] == s["no_ops"]
