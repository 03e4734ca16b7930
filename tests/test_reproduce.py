"""``python -m jaxspatial.reproduce`` end to end at smoke scale: the page has one summary row
per setting with every seed and an interval per metric, a per-run table, its figure and the
commands; a second invocation reuses every run and evaluation; bad input is one error line."""

import re
import xml.etree.ElementTree as ET

import jax
import pytest

from jaxspatial import reproduce
from jaxspatial.reproduction import report, runs, spatialgan

INTERVAL = re.compile(r"^-?\d+\.\d+ ± \d+\.\d+$")


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


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
  """The smoke page of ``spatialgan-comove`` with 2 seeds (rbg keys: threefry's init and
  sampling compile for far longer on the 2-core CI)."""
  impl = jax.config.jax_default_prng_impl
  jax.config.update("jax_default_prng_impl", "rbg")
  yield _smoke(tmp_path_factory)
  jax.config.update("jax_default_prng_impl", impl)


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
  ET.fromstring((root / "out" / "spatialgan-comove.svg").read_text())
  assert "![" in text and "python -m jaxspatial.train --config configs/spatialgan.py:tiny" in text
  assert "python -m jaxspatial.evaluate --checkpoint" in text
  assert "Smoke scale" in text


def test_second_invocation_reuses_runs_and_evaluations(smoke):
  root, argv = smoke
  page = root / "out" / "spatialgan-comove.md"
  before = page.read_text()
  records = sorted((root / "runs").rglob(runs.RECORD))
  stamps = [p.stat().st_mtime_ns for p in records]
  reproduce.main(argv)
  assert [p.stat().st_mtime_ns for p in records] == stamps      # nothing trained again
  assert table(page.read_text(), "## Results") == table(before, "## Results")


def test_a_different_run_in_the_way_is_refused(smoke):
  root, _ = smoke
  spec = runs.RunSpec(spatialgan.NAME, "aligned", 0, "spatialgan.py", "tiny",
                      runs.SMOKE_OVERRIDES + (("loss.align_weight", 5.0),))
  with pytest.raises(runs.cli.UserError, match="holds another run .*align_weight"):
    runs.Session(root / "runs", "smoke", 1).train(spec)


def test_interval_is_student_t():
  mean, half, n = report.interval([1.0, 2.0, 3.0])
  assert (mean, n) == (2.0, 3)
  assert half == pytest.approx(4.302653 * 1.0 / 3 ** 0.5, rel=1e-6)   # t_{0.975, 2} = 4.3027
  assert report.interval([5.0])[1] != report.interval([5.0])[1]        # nan: no interval


def test_bad_seeds_is_one_line_error(capsys):
  with pytest.raises(SystemExit) as e:
    reproduce.cli.run(lambda: reproduce.main(["ssn-lambda", "--seeds", "0"]))
  assert e.value.code == 2
  assert capsys.readouterr().err.strip() == "error: --seeds must be at least 1, got 0"


def test_a_run_trained_past_the_target_is_refused(smoke, tmp_path):
  """A run found at a later step than the target's would be evaluated at the wrong length."""
  import shutil
  root, _ = smoke
  spec = spatialgan.run_spec("smoke", "aligned", 0)
  found = spec.workdir(root / "runs" / "smoke")
  copy = spec.workdir(tmp_path / "smoke")
  shutil.copytree(found, copy)
  (copy / "checkpoints" / "0").rename(copy / "checkpoints" / "5")
  with pytest.raises(runs.cli.UserError, match="trained to step 5, past this target's 0"):
    runs.Session(tmp_path, "smoke", 1).train(spec)


def test_regressor_targets_share_their_runs(tmp_path):
  """``regressor-edits`` trains the ``regressor-table3`` runs (RGBM and RGB against the
  ``ssn-lambda`` source); ``regressor-table3`` then finds every one of them again -- the
  comparison is with the config as the regressor's trainer saves it, generator attached."""
  from jaxspatial.reproduction import regressor
  root = tmp_path
  common = ["--scale", "smoke", "--seeds", "1", "--runs", str(root / "runs"), "--out",
            str(root / "out")]
  reproduce.main(["regressor-edits", *common])
  records = sorted((root / "runs").rglob(runs.RECORD))
  assert len(records) == 3                     # the generator, RGBM and RGB (no critic needed)
  stamps = [p.stat().st_mtime_ns for p in records]
  reproduce.main(["regressor-table3", *common])
  assert [p.stat().st_mtime_ns for p in sorted((root / "runs").rglob(runs.RECORD))
          if p in records] == stamps
  edits = table((root / "out" / "regressor-edits.md").read_text(), "## Results")
  assert [r[0] for r in edits] == [label for _, label in regressor.EDITS_ROWS]
  rows = table((root / "out" / "regressor-table3.md").read_text(), "## Results")
  assert [r[0] for r in rows] == ["pixel paste", "RGB", "RGB fill", "RGBM"]
  assert rows[0][-1] == "–" and rows[0][2].startswith("0.0000")   # paste: no training, L1 0
