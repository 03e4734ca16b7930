"""``python -m jaxspatial.reproduce`` end to end at smoke scale: one committed row per unit
(whole or absent), pages rebuilt from rows byte for byte, paired statistics, the budget,
--units and the status; the committed pages equal their rows' pages; bad input is one error line."""

import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET

import jax
import numpy as np
import pytest
from scipy import stats

from helpers import rbg_keys
from jaxspatial import reproduce
from jaxspatial.errors import UserError
from jaxspatial.reproduction import campaign, ledger, report, runs, spatialgan

INTERVAL = re.compile(r"^-?\d+\.\d+ ± \d+\.\d+$")
PAIRED = re.compile(r"^[+-]\d+\.\d+ ± \d+\.\d+$")


def table(text: str, after: str) -> list[list[str]]:
  """The cells of the first markdown table after the line ``after`` (header dropped)."""
  lines = text.split(after, 1)[1].splitlines()
  start = next(i for i, l in enumerate(lines) if l.startswith("|"))
  body = []
  for line in lines[start + 2:]:
    if not line.startswith("|"):
      break
    body.append([c.strip() for c in line.strip("|").split("|")])
  return body


pytestmark = pytest.mark.slow     # 7 runs initialised and saved through the trainer: ~1 min

COMMITTED = pathlib.Path(__file__).resolve().parents[1] / "docs" / "reproduction"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
  """The units and page of ``spatialgan-comove`` at smoke scale with 2 seeds
  (:func:`helpers.rbg_keys`)."""
  with rbg_keys():
    yield _smoke(tmp_path_factory)


def _smoke(tmp_path_factory):
  root = tmp_path_factory.mktemp("reproduce")
  argv = ["spatialgan-comove", "--scale", "smoke", "--seeds", "2", "--runs", str(root / "runs"),
          "--out", str(root / "out")]
  reproduce.main(argv)
  return root, argv


def test_smoke_page_has_a_row_per_setting_with_intervals(smoke):
  root, _ = smoke
  text = (root / "out" / "spatialgan-comove.md").read_text()
  rows = table(text, "## Results")
  assert [r[0] for r in rows] == [label for _, label, _ in spatialgan.SETTINGS]
  for r in rows:
    assert r[1] == "2"
    for cell in r[2:2 + len(spatialgan.COLUMNS)]:
      assert INTERVAL.match(cell), (r, cell)
  per_run = table(text, "Per run:")
  assert sorted((r[0], r[1]) for r in per_run) == sorted(
      (label, str(s)) for _, label, _ in spatialgan.SETTINGS for s in (0, 1))
  paired = table(text, "Paired by seed")
  assert len(paired) == len(spatialgan.PAIRED)
  assert all(r[1] == "2" and PAIRED.match(r[2]) for r in paired), paired
  ET.fromstring((root / "out" / "spatialgan-comove.svg").read_text())
  n = 2 * len(spatialgan.SETTINGS)
  assert f"**{n} of {n} units**" in text
  assert "![" in text and "python -m jaxspatial.train --config configs/spatialgan.py:tiny" in text
  assert "python -m jaxspatial.evaluate --checkpoint" in text
  assert "Smoke scale" in text


def test_each_unit_wrote_one_row_with_its_provenance(smoke):
  root, _ = smoke
  rows = ledger.read(root / "out" / "results", spatialgan.NAME)
  assert sorted(r.unit for r in rows) == sorted(
      f"{name}-s{s}" for name, _, _ in spatialgan.SETTINGS for s in (0, 1))
  critic = root / "out" / "references" / "critic-smoke.npz"
  for r in rows:
    assert r.version == spatialgan.TARGET.version and r.scale == "smoke"
    assert {"comove", "comove_all", "critic_fd"} <= set(r.metrics)
    assert r.references["critic"]["sha256"] == ledger.sha256(critic)
    assert r.machine["platform"] == "cpu" and r.machine["jax"] == jax.__version__
    assert any(k.startswith("train ") for k in r.phases) and r.wall_seconds > 0
    assert any(f"--workdir {runs.display(root / 'runs' / 'smoke' / spatialgan.NAME / r.unit)}"
               in c for c in r.commands)


def test_page_only_rewrites_the_page_byte_for_byte(smoke, capsys):
  root, argv = smoke
  page = root / "out" / "spatialgan-comove.md"
  figure = root / "out" / "spatialgan-comove.svg"
  before = page.read_bytes(), figure.read_bytes()
  page.unlink()
  figure.unlink()
  reproduce.main([*argv, "--page-only"])
  assert (page.read_bytes(), figure.read_bytes()) == before


def test_second_invocation_runs_no_unit(smoke, capsys):
  root, argv = smoke
  records = sorted((root / "runs").rglob(runs.RECORD))
  stamps = [p.stat().st_mtime_ns for p in records]
  rows = sorted((root / "out" / "results").rglob("*.json"))
  row_stamps = [p.stat().st_mtime_ns for p in rows]
  capsys.readouterr()
  reproduce.main(argv)
  assert [p.stat().st_mtime_ns for p in records] == stamps      # nothing trained again
  assert [p.stat().st_mtime_ns for p in rows] == row_stamps     # no row rewritten
  assert "every unit of spatialgan-comove has a row" in capsys.readouterr().out


def test_units_runs_only_the_named_units(smoke, tmp_path, capsys):
  """``--units`` with a third seed: that seed's one named unit runs, its other two do not."""
  root, argv = smoke
  shutil.copytree(root, tmp_path / "copy")
  copy = [a.replace(str(root), str(tmp_path / "copy")) for a in argv]
  capsys.readouterr()
  reproduce.main([*copy, "--seeds", "3", "--units", "align0-s2"])
  assert "unit 1/1: spatialgan-comove align0-s2" in capsys.readouterr().out
  rows = ledger.read(tmp_path / "copy" / "out" / "results", spatialgan.NAME)
  assert sorted(r.unit for r in rows if r.seed == 2) == ["align0-s2"]
  assert len(rows) == 2 * len(spatialgan.SETTINGS) + 1


def test_status_counts_units_and_orders_by_priority(smoke, capsys):
  root, argv = smoke
  capsys.readouterr()
  reproduce.main(["--status", *argv[1:]])
  lines = table("\n" + capsys.readouterr().out, "\n")
  assert [r[0] for r in lines] == [*campaign.TARGETS, "all"]
  comove = dict(zip(("target", "version", "done", "missing"), lines[0]))
  n = 2 * len(spatialgan.SETTINGS)
  assert comove["done"] == f"{n}/{n}" and comove["missing"] == "0"
  assert lines[1][2] == "0/6" and lines[1][5].startswith("draggan-s0")


def test_budget_stops_before_a_unit_that_would_not_fit(smoke, capsys):
  """The drag units' estimate (no row yet: the target's prior, tens of minutes) exceeds a
  one-minute budget, so nothing runs and the command says why."""
  root, argv = smoke
  capsys.readouterr()
  reproduce.main(["drag-table2", *argv[1:], "--budget", "1m"])
  out = capsys.readouterr().out
  assert out.startswith("stopping: drag-table2 draggan-s0 would take ~40 min")
  assert not (root / "out" / "results" / "drag-table2").exists()


def test_a_unit_killed_mid_way_leaves_no_row(tmp_path):
  """SIGKILL while the unit trains: no row, and no temporary file that reads as one."""
  env = {**os.environ, "JAX_DEFAULT_PRNG_IMPL": "rbg"}
  out, run_root = tmp_path / "out", tmp_path / "runs"
  proc = subprocess.Popen(
      [sys.executable, "-m", "jaxspatial.reproduce", "spatialgan-comove", "--scale", "smoke",
       "--seeds", "1", "--runs", str(run_root), "--out", str(out)],
      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  unit_dir = run_root / "smoke" / spatialgan.NAME / "aligned-s0"
  deadline = time.monotonic() + 240
  while not unit_dir.exists() and proc.poll() is None and time.monotonic() < deadline:
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert unit_dir.exists(), "the unit never started training"
  assert sorted((out / "results").rglob("*.json")) == []
  assert ledger.read(out / "results", spatialgan.NAME) == []


def test_committed_pages_are_built_from_their_rows(tmp_path):
  """Every committed page equals what ``--page-only`` writes from the committed rows (a page
  cannot drift from its data), and no page prints a machine's absolute path."""
  names = [n for n in campaign.TARGETS if (COMMITTED / f"{n}.md").is_file()]
  assert names, "no committed page"
  shutil.copytree(COMMITTED / ledger.RESULTS, tmp_path / ledger.RESULTS)
  c = campaign.Campaign(tmp_path, tmp_path / "runs")
  for name in names:
    c.page(name)
    longer = [o for o in campaign.TARGETS if o != name and o.startswith(name)]
    own = lambda folder: {p.name for p in folder.glob(f"{name}*.*") if p.suffix in (".md", ".svg")
                          and not any(p.name.startswith((f"{o}.", f"{o}-")) for o in longer)}
    written, committed = own(tmp_path), own(COMMITTED)
    assert written == committed, name                  # the curve figures (NAME-*.svg) too
    for file in written:
      assert (tmp_path / file).read_bytes() == (COMMITTED / file).read_bytes(), file
    text = (COMMITTED / f"{name}.md").read_text()
    assert not re.search(r"(^|[\s`(])/(work|tmp|root|home)/", text, re.M), name


def test_interval_is_student_t():
  mean, half, n = report.interval([1.0, 2.0, 3.0])
  assert (mean, n) == (2.0, 3)
  assert half == pytest.approx(4.302653 * 1.0 / 3 ** 0.5, rel=1e-6)   # t_{0.975, 2} = 4.3027
  assert report.interval([5.0])[1] != report.interval([5.0])[1]        # nan: no interval


def test_paired_difference_and_log_ratio_against_direct_computation():
  """Paired by seed: the interval of the per-seed differences (or log-ratios), not of the
  two settings' spreads; a seed present in one setting only is left out."""
  col = report.Column("x", "x", ".4f")
  unit = lambda seed: ledger.Row("t", "s", seed, 1, "small", {}, (), {}, None, {}, {}, {},
                                 "c", "d")
  a = report.Row("a", [(unit(s), {"x": v}) for s, v in enumerate([1.0, 2.0, 4.0, 9.0])])
  b = report.Row("b", [(unit(s), {"x": v}) for s, v in enumerate([2.0, 4.5, 7.0])])
  diffs = np.array([1.0, 2.5, 3.0])
  half = stats.t.ppf(0.975, 2) * diffs.std(ddof=1) / np.sqrt(3)
  cell, n = report.paired_cell([a, b], report.Paired("a", "b", col))
  assert n == 3 and cell == f"{diffs.mean():+.4f} ± {half:.4f}"
  logs = np.log([2.0, 4.5 / 2.0, 7.0 / 4.0])
  half = stats.t.ppf(0.975, 2) * logs.std(ddof=1) / np.sqrt(3)
  cell, n = report.paired_cell([a, b], report.Paired("a", "b", col, log=True))
  assert cell == (f"× {np.exp(logs.mean()):.3g} [{np.exp(logs.mean() - half):.3g}, "
                  f"{np.exp(logs.mean() + half):.3g}]")


def test_curves_figure_draws_each_run_and_the_mean_at_shared_steps(tmp_path):
  """A Curves figure: a faint polyline per run, the setting's mean across runs at the steps
  every run logged (bold), the dashed reference, linked from the page below its figure."""
  unit = lambda seed: ledger.Row("t", "s", seed, 1, "small", {}, (), {}, None, {}, {}, {},
                                 "c", "d")
  a = report.Row("a", [(unit(0), {"q@10": 1.0, "q@20": 3.0, "q@30": 5.0, "other": 9.0}),
                       (unit(1), {"q@10": 3.0, "q@20": 5.0})])
  b = report.Row("b", [(unit(0), {"q@10": 0.5})])        # one point: nothing to draw
  curves = report.Curves("q@", "q", "q", reference=0.6, caption="q over training")
  svg = ET.fromstring(report.curves_svg(curves, [a, b]))
  ns = "{http://www.w3.org/2000/svg}"
  lines = svg.iter(f"{ns}polyline")
  faint, mean = [], []
  for line in lines:
    (mean if line.get("stroke-width") else faint).append(line)
  assert len(faint) == 2 and len(mean) == 1
  frame_y = lambda el: [float(p.split(",")[1]) for p in el.get("points").split()]
  first_run = frame_y(faint[0])
  assert len(first_run) == 3 and len(frame_y(mean[0])) == 2        # steps 10, 20 only
  # the mean's pixel heights lie halfway between the two runs' (means 2 and 4)
  second_run = frame_y(faint[1])
  assert frame_y(mean[0]) == pytest.approx(
      [(u + v) / 2 for u, v in zip(first_run[:2], second_run)], abs=0.11)
  assert len([el for el in svg.iter(f"{ns}line") if el.get("stroke-dasharray")]) == 1
  col = report.Column("q@10", "q", ".2f")
  page = report.write_page(tmp_path, "t", [], [], title="t", claim="c", columns=[col],
                           rows=[a, b], curves=[curves])
  assert "![q over training](t-q.svg)" in page.read_text()
  ET.fromstring((tmp_path / "t-q.svg").read_text())

def test_an_unmeasured_setting_is_estimated_from_its_prior_at_the_machine_speed(tmp_path):
  """One measured row of ssn-vs-stylegan2 (StyleGAN2, prior 20 min, took 4 min): the SSN
  setting's estimate is its own prior at that speed (25 min x 4/20 = 5 min), not the other
  setting's wall time; a measured setting is its own median."""
  from jaxspatial.reproduction import ssn_table1
  t = campaign.target(ssn_table1.NAME)
  row = ledger.Row(target=t.name, setting="stylegan2", seed=0, version=t.version,
                   scale="small", metrics={}, commands=(), phases={"train runs/x": 200.0, "eval": 40.0},
                   train_seconds=200.0, configs={}, references={}, machine={}, commit="x",
                   date="2026-12-07")
  ledger.write(tmp_path / ledger.RESULTS, row)
  c = campaign.Campaign(tmp_path, tmp_path / "runs")
  units = {u.name: u for u in c.units(t.name)}
  speed = 240.0 / (60.0 * t.estimate_minutes["stylegan2"])
  assert c.estimate(units["ssn-s0"]) == pytest.approx(60.0 * t.estimate_minutes["ssn"] * speed)
  assert c.estimate(units["stylegan2-s1"]) == pytest.approx(240.0)


def test_a_row_that_trained_nothing_does_not_set_the_machine_speed(tmp_path):
  """A regressor-variation row whose runs were all in the cache (2 s of measuring, no train
  phase): the other settings keep their priors, not 2 s scaled."""
  from jaxspatial.reproduction import composition
  t = campaign.target(composition.VARIATION)
  row = ledger.Row(target=t.name, setting="stylegan2", seed=0, version=t.version,
                   scale="small", metrics={}, commands=(), phases={"measure": 2.0},
                   train_seconds=2600.0, configs={}, references={}, machine={}, commit="x",
                   date="2026-12-07")
  ledger.write(tmp_path / ledger.RESULTS, row)
  c = campaign.Campaign(tmp_path, tmp_path / "runs")
  units = {u.name: u for u in c.units(t.name)}
  assert c.estimate(units["ssn-s0"]) == pytest.approx(60.0 * t.estimate_minutes["ssn"])
  assert c.estimate(units["stylegan2-s1"]) == pytest.approx(
      60.0 * t.estimate_minutes["stylegan2"])


def test_budget_parsing():
  assert campaign.parse_budget("2h") == 7200 and campaign.parse_budget("90m") == 5400
  assert campaign.parse_budget("45min") == 2700 and campaign.parse_budget("1.5") == 5400
  assert campaign.parse_budget("2h05m") == 7500 and campaign.parse_budget("1h 30min 10s") == 5410
  for bad in ("", "0h", "two hours", "-1h", "2h05", "5mh", "0h0m"):
    with pytest.raises(UserError, match="--budget"):
      campaign.parse_budget(bad)


def test_bad_seeds_is_one_line_error(capsys):
  with pytest.raises(SystemExit) as e:
    reproduce.cli.run(lambda: reproduce.main(["ssn-lambda", "--seeds", "0"]))
  assert e.value.code == 2
  assert capsys.readouterr().err.strip() == "error: --seeds must be at least 1, got 0"


def test_a_different_run_in_the_way_is_refused(smoke):
  root, _ = smoke
  spec = runs.RunSpec(spatialgan.NAME, "aligned", 0, "spatialgan.py", "tiny",
                      runs.SMOKE_OVERRIDES + (("loss.align_weight", 5.0),))
  with pytest.raises(UserError, match="holds another run .*align_weight"):
    runs.Session(root / "runs", "smoke", root / "out").train(spec)


def test_a_run_trained_past_the_target_is_refused(smoke, tmp_path):
  """A run found at a later step than the target's would be evaluated at the wrong length."""
  root, _ = smoke
  spec = spatialgan.run_spec("smoke", "aligned", 0)
  found = spec.workdir(root / "runs" / "smoke")
  copy = spec.workdir(tmp_path / "smoke")
  shutil.copytree(found, copy)
  (copy / "checkpoints" / "0").rename(copy / "checkpoints" / "5")
  with pytest.raises(UserError, match="trained to step 5, past this target's 0"):
    runs.Session(tmp_path, "smoke", tmp_path / "out").train(spec)


def test_a_run_killed_before_its_first_checkpoint_is_trained(tmp_path):
  """A unit killed before it wrote a step (a session's end, a kill) leaves its folder with an
  empty ``checkpoints/`` and a ``train.lock``; the next process trains the run instead of
  stopping the campaign with "holds no checkpoint"."""
  spec = spatialgan.run_spec("smoke", "aligned", 0)
  session = runs.Session(tmp_path / "runs", "smoke", tmp_path / "out")
  workdir = spec.workdir(session.root)
  (workdir / "checkpoints").mkdir(parents=True)
  (workdir / "train.lock").write_text("")
  with rbg_keys():
    run = session.train(spec)
  assert run.workdir == workdir and (workdir / "checkpoints" / "0").is_dir()


def test_a_run_stopped_by_sigterm_writes_no_row_and_stops_the_campaign(tmp_path, monkeypatch,
                                                                      capsys):
  """Training that returns before its last step (SIGTERM: a checkpoint saved, "preempted")
  is not measured as a finished run: Session.train raises Stopped, the record counts only the
  steps trained, and the campaign ends there instead of writing a row and going on."""
  from jaxspatial.training import loop

  def preempted(config, workdir):             # as loop.train returns after a SIGTERM
    (pathlib.Path(workdir) / "checkpoints" / "2").mkdir(parents=True)
  monkeypatch.setattr(loop, "train", preempted)
  base = spatialgan.run_spec("smoke", "aligned", 0)
  spec = runs.RunSpec(base.target, base.setting, 0, base.config, base.preset,
                      base.overrides + (("total_steps", 5),))
  session = runs.Session(tmp_path / "runs", "smoke", tmp_path / "out")
  with pytest.raises(runs.Stopped, match="stopped at step 2 of 5"):
    session.train(spec)
  assert json.loads((spec.workdir(session.root) / runs.RECORD).read_text())["timed_steps"] == 2

  c = campaign.Campaign(tmp_path, tmp_path / "runs")
  ran = []

  def fake_run(self, unit):
    ran.append(unit.name)
    raise runs.Stopped("runs/x stopped at step 2 of 5 (SIGTERM)")
  monkeypatch.setattr(campaign.Campaign, "run", fake_run)
  with pytest.raises(runs.Stopped):
    list(c.run_missing([spatialgan.NAME], None, ["align0-s0", "aligned-s0"]))
  assert len(ran) == 1 and not c.rows(spatialgan.NAME)
  with pytest.raises(SystemExit) as e:                 # the command: one line, 128 + SIGTERM
    reproduce.cli.run(lambda: reproduce.main([spatialgan.NAME, "--runs", str(tmp_path / "runs"),
                                              "--out", str(tmp_path)]))
  assert e.value.code == 143 and capsys.readouterr().err.startswith("stopped: runs/x stopped")


def test_regressor_targets_share_their_runs(tmp_path):
  """``regressor-edits`` trains the RGBM regressors against the ``ssn-lambda`` source;
  ``regressor-table3`` then finds them again and adds the RGB ones (the comparison is with
  the config as the regressor's trainer saves it, generator attached)."""
  from jaxspatial.reproduction import regressor
  root = tmp_path
  common = ["--scale", "smoke", "--seeds", "1", "--runs", str(root / "runs"), "--out",
            str(root / "out")]
  reproduce.main(["regressor-edits", *common])
  records = sorted((root / "runs").rglob(runs.RECORD))
  assert len(records) == 2                     # the generator and RGBM (no critic needed)
  stamps = [p.stat().st_mtime_ns for p in records]
  reproduce.main(["regressor-table3", *common])
  assert [p.stat().st_mtime_ns for p in sorted((root / "runs").rglob(runs.RECORD))
          if p in records] == stamps
  edits = table((root / "out" / "regressor-edits.md").read_text(), "## Results")
  assert [r[0] for r in edits] == [label for _, label in regressor.EDITS_ROWS]
  rows = table((root / "out" / "regressor-table3.md").read_text(), "## Results")
  assert [r[0] for r in rows] == ["pixel paste", "RGB", "RGB fill", "RGBM"]
  assert rows[0][-1] == "–" and rows[0][2].startswith("0.0000")   # paste: no training, L1 0


@pytest.mark.parametrize("scale", ["small", "smoke"])
def test_every_spatialgan_unit_builds_its_networks(scale):
  """The ladder and ablation settings are config switches on the demo presets: each unit's
  config validates and its generator traces (no compile), so no unit of the campaign dies
  on a switch combination hours into its run."""
  import jax.numpy as jnp
  from jaxspatial import families
  from jaxspatial.reproduction import spatialgan_ablations, spatialgan_table1
  from jaxspatial.training import config_lib
  specs = ([spatialgan.run_spec(scale, s, 0) for s in spatialgan.TARGET.settings] +
           [spatialgan_table1._spec(scale, s, 0) for s in spatialgan_table1.TARGET.settings] +
           [spatialgan_ablations._spec(scale, s, 0)
            for s in spatialgan_ablations.TARGET.settings])
  for spec in specs:
    config = spec.build()
    config_lib.validate(config, num_devices=1, num_processes=1)
    g = families.build_generator(config.model)
    key = jax.random.key(0)
    h = g.sample_heatmaps(key, 2)
    shapes = jax.eval_shape(lambda k: g.init({"params": k, "noise": k},
                                             jnp.zeros((2, *g.latent_shape)), h), key)
    assert jax.tree.leaves(shapes), spec
    if spec.target == spatialgan_table1.NAME:
      assert config.data.num_objects == config.model.num_objects == 3


def test_a_table1_unit_measures_every_heatmap_edit(smoke):
  """The top rung's unit (one style code per object) measures co-move, critic FD and every
  edit kind; the indoor-edits page, which has no units of its own, is built from it."""
  from jaxspatial.metrics import heatmap_edits
  from jaxspatial.reproduction import spatialgan_table1
  root, _ = smoke
  c = campaign.Campaign(root / "out", root / "runs", "smoke", seeds=1)
  row = c.run(campaign.Unit(spatialgan_table1.NAME, "align-indoor", 0))
  assert {"comove_all", "critic_fd", "edit_seconds"} <= set(row.metrics)
  assert {f"{k}_located" for k in heatmap_edits.KINDS} <= set(row.metrics)
  text = c.page(spatialgan_table1.EDITS).read_text()
  assert f"**1 of {len(spatialgan_table1.SETTINGS)} units**" in text
  assert "spatialgan-table1:conference-s0" in text


def test_the_critic_file_scores_as_its_checkpoint(smoke):
  """The committed critic (.npz) is the checkpoint's discriminator, not an approximation:
  the same features and logits on the same images."""
  import jaxspatial as js
  from jaxspatial.metrics.registry import open_critic
  from jaxspatial.nets import critic as critic_lib
  root, _ = smoke
  run = runs.critic_spec("smoke").workdir(root / "runs" / "smoke")
  images = np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 3)).astype(np.float32)
  direct = critic_lib.critic_from_model(js.load(run))
  saved = open_critic(root / "out" / "references" / "critic-smoke.npz")
  np.testing.assert_array_equal(saved.features(images), direct.features(images))
  np.testing.assert_array_equal(saved.logits(images), direct.logits(images))
  with pytest.raises(UserError, match="does not exist"):
    open_critic(root / "missing.npz")


def test_a_run_saved_before_a_config_key_existed_is_the_same_run():
  """A key the saved config lacks is the new key's default (no difference) unless the spec
  sets it; a value that differs is always a difference."""
  import ml_collections
  saved = ml_collections.ConfigDict({"seed": 0, "model": {"width": 32}})
  wanted = ml_collections.ConfigDict({"seed": 0, "model": {"width": 32, "conditioning": "modconv"},
                                      "augment": {"kind": "none", "p": 0.0}})
  assert runs._differences(saved, wanted, set()) == []
  assert runs._differences(saved, wanted, {"model.conditioning"}) == [
      "model.conditioning=None (wanted 'modconv')"]
  assert runs._differences(saved, wanted, {"augment.p"}) == ["augment=None (wanted {'kind': "
                                                             "'none', 'p': 0.0})"]
  wanted.model.width = 64
  assert runs._differences(saved, wanted, set()) == ["model.width=32 (wanted 64)"]


def test_drag_units_follow_the_comove_units_of_their_seed(tmp_path):
  """drag-table2 measures spatialgan-comove's runs: its seed-s units are planned right after
  that target's seed-s units, while the local cache still holds the models."""
  c = campaign.Campaign(tmp_path, tmp_path / "runs", seeds=2)
  plan = [(u.target, u.seed) for u in c.plan(["spatialgan-comove", "drag-table2",
                                              "spatialgan-table1"])]
  n_comove, n_drag = len(spatialgan.TARGET.settings), 3
  assert plan[:n_comove + n_drag] == ([("spatialgan-comove", 0)] * n_comove +
                                      [("drag-table2", 0)] * n_drag)
  assert plan[n_comove + n_drag] == ("spatialgan-comove", 1)
  assert plan[-1] == ("spatialgan-table1", 1)


def test_ada_units_read_r_t_and_p_from_the_training_log(tmp_path):
  """The overfitting heuristic over training comes from the run's metrics.jsonl: its last
  tenth's mean, p at the end, and the curve at evenly spaced logged steps."""
  from jaxspatial.reproduction import ada
  lines = [{"step": 25 * (i + 1), "augment/r_t": i / 19, "augment/p": 0.01 * i}
           for i in range(20)]
  (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))
  got = ada.training_curve(tmp_path)
  assert got["r_t_final"] == pytest.approx((18 / 19 + 1) / 2)
  assert got["p_final"] == pytest.approx(0.19)
  # 8 windows of the 20 logged steps, ending at lines 2, 5, 8, 10, 12, 15, 18, 20
  assert got["r_t@50"] == pytest.approx(0.5 / 19) and got["p@50"] == pytest.approx(0.01)
  assert got["r_t@125"] == pytest.approx(3 / 19) and got["p@125"] == pytest.approx(0.04)
  assert got["r_t@500"] == pytest.approx(18.5 / 19) and got["p@500"] == pytest.approx(0.19)
  assert len([k for k in got if k.startswith("r_t@")]) == ada.CURVE_POINTS
  (tmp_path / "metrics.jsonl").unlink()
  assert np.isnan(ada.training_curve(tmp_path)["r_t_final"])
  spec = ada.run_spec("small", "n500-ada", 1).build()
  assert (spec.data.length, spec.augment.kind, spec.total_steps) == (500, "ada", 6000)
  assert spec.augment.speed_kimg == ada.SPEED_KIMG < spec.total_steps * spec.batch_size / 1000
  assert ada.run_spec("small", "n2000-none", 0).build().augment.kind == "none"


def test_a_row_keeps_the_commit_its_process_started_with(monkeypatch):
  """The checkout may move while a unit trains (a campaign worktree updated under it); the
  row must name the commit whose code the process imported, read before the unit ran."""
  ledger.commit.cache_clear()
  first = ledger.commit()
  moved = lambda args, **k: subprocess.CompletedProcess(
      args, 0, stdout="0123456789ab\n" if "rev-parse" in args else "")
  monkeypatch.setattr(ledger.subprocess, "run", moved)
  assert ledger.commit() == first
  ledger.commit.cache_clear()
  assert ledger.commit() == "0123456789ab"
  ledger.commit.cache_clear()


def _fake_row(c: campaign.Campaign, unit) -> ledger.Row:
  row = ledger.Row(target=unit.target, setting=unit.setting, seed=unit.seed,
                   version=campaign.target(unit.target).version, scale=c.scale,
                   metrics={"x": 1.0}, commands=(), phases={"train x": 1.0}, train_seconds=1.0,
                   configs={}, references={}, machine={}, commit="c", date="2026-12-07")
  ledger.write(c.results, row)
  return row


def _hold_in_another_process(path: pathlib.Path) -> subprocess.Popen:
  """A child process that holds ``path``'s lock (:func:`runs.held`) until it is killed."""
  code = ("import fcntl, pathlib, sys, time; p = pathlib.Path(sys.argv[1]); "
          "p.parent.mkdir(parents=True, exist_ok=True); f = open(p, 'a'); "
          "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(600)")
  proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                          text=True)
  assert proc.stdout.readline().strip() == "held"
  return proc


def test_processes_sharing_a_run_cache_split_the_units(tmp_path, monkeypatch):
  """Two ``reproduce`` processes on one run cache and ledger: a unit another live process
  holds is skipped (not waited for, not run twice) and the next one runs; a unit whose row
  appeared after this process planned is skipped too; a holder that dies releases its unit."""
  c = campaign.Campaign(tmp_path, tmp_path / "runs")
  ran = []

  def fake_run(self, unit):
    ran.append(unit.name)
    if unit.name == "align0-s0":        # meanwhile another process finishes stylegan2-s0
      _fake_row(self, campaign.Unit(unit.target, "stylegan2", 0))
    return _fake_row(self, unit)
  monkeypatch.setattr(campaign.Campaign, "run", fake_run)
  monkeypatch.setattr(campaign.Campaign, "page", lambda self, name: name)
  first = c.plan([spatialgan.NAME])[0]
  holder = _hold_in_another_process(c.claim(first))
  try:
    lines = list(c.run_missing([spatialgan.NAME], None, ["aligned-s0", "align0-s0",
                                                          "stylegan2-s0"]))
  finally:
    holder.kill()
    holder.wait()
  assert lines[0] == "skipping spatialgan-comove aligned-s0: another process is running it"
  assert "skipping spatialgan-comove stylegan2-s0: another process wrote its row" in lines
  assert ran == ["align0-s0"]
  assert list(c.run_missing([spatialgan.NAME], None, ["aligned-s0"]))[0].startswith("unit 1/1")
  assert ran == ["align0-s0", "aligned-s0"]


def test_a_failing_unit_is_passed_over_and_reported_at_the_end(tmp_path, monkeypatch):
  """A unit that fails with a user error does not stop an unattended campaign: the next units
  run and write their rows, and the error is raised (one line, exit 2) when they are done."""
  c = campaign.Campaign(tmp_path, tmp_path / "runs")
  ran = []

  def fake_run(self, unit):
    ran.append(unit.name)
    if unit.name == "aligned-s0":      # the first in the plan
      raise UserError("runs/x holds another run")
    return _fake_row(self, unit)
  monkeypatch.setattr(campaign.Campaign, "run", fake_run)
  monkeypatch.setattr(campaign.Campaign, "page", lambda self, name: name)
  lines = []
  with pytest.raises(UserError, match="1 unit.s. failed, the first spatialgan-comove aligned-s0"):
    for line in c.run_missing([spatialgan.NAME], None, ["align0-s0", "aligned-s0"]):
      lines.append(line)
  assert ran == ["aligned-s0", "align0-s0"]
  assert any(l.startswith("failed: spatialgan-comove aligned-s0: runs/x holds") for l in lines)
  assert [r.unit for r in c.rows(spatialgan.NAME)] == ["align0-s0"]


def test_a_run_in_training_elsewhere_is_waited_for_then_reused(tmp_path, capsys):
  """Session.train on a run whose lock another process holds waits (saying so) and then
  trains or reuses it; it does not fail on the other process's train.lock."""
  spec = spatialgan.run_spec("smoke", "aligned", 0)
  session = runs.Session(tmp_path / "runs", "smoke", tmp_path / "out")
  workdir = spec.workdir(session.root)
  holder = _hold_in_another_process(workdir.with_name(workdir.name + ".lock"))
  timer = threading.Timer(1.0, holder.kill)
  timer.start()
  try:
    t0 = time.monotonic()
    with rbg_keys():
      run = session.train(spec)
    assert time.monotonic() - t0 >= 0.9
  finally:
    timer.cancel()
    holder.kill()
    holder.wait()
  assert "waiting for another process to finish" in capsys.readouterr().out
  assert run.workdir == workdir and (workdir / "checkpoints").is_dir()
