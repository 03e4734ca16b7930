"""``ssn-droplets``: the droplet measure against direct computations, and the target end to end
at smoke scale (one row per unit, a panel per unit linked from the page, the page rebuilt from
rows byte for byte)."""

import math
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from jaxspatial import reproduce
from jaxspatial.reproduction import campaign, droplets, ledger
from helpers import rbg_keys

INTERVAL = re.compile(r"^-?\d+\.\d+ ± \d+\.\d+$")


def test_peak_energy_share_and_ratio_against_direct_computation():
  """A droplet (one position far above a flat map) holds ~all the energy; a smooth ramp's
  top positions hold little; the values equal a by-hand computation."""
  rng = np.random.default_rng(0)
  flat = rng.normal(size=(32, 32)) * 0.1
  droplet = flat.copy()
  droplet[5, 7] += 50.0
  ramp = np.add.outer(np.arange(32.0), np.arange(32.0))
  maps = np.stack([flat, droplet, ramp])
  share, ratio = droplets.peak_energy_share(maps), droplets.peak_ratio(maps)
  for m, s, r in zip(maps, share, ratio):
    d = (m - np.median(m)).ravel()
    k = math.ceil(0.005 * 1024)                                   # 6 positions
    assert s == pytest.approx(np.sort(d ** 2)[-k:].sum() / (d ** 2).sum(), rel=1e-9)
    assert r == pytest.approx(np.abs(d).max() / np.median(np.abs(d)), rel=1e-9)
  assert share[1] > 0.99 and share[0] < 0.1 and share[2] < 0.05
  assert ratio[1] > 100 * ratio[0]
  assert droplets.peak_energy_share(np.ones((1, 8, 8)))[0] != droplets.peak_energy_share(
      np.ones((1, 8, 8)))[0]                                     # nan: nothing to share
  assert droplets.peak_energy_share(np.arange(64.0).reshape(1, 8, 8))[0] == pytest.approx(
      (63 - 31.5) ** 2 / np.square(np.arange(64.0) - 31.5).sum())  # k = 1 at 8 px


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
  """The units and page at smoke scale with 2 seeds (rbg keys, as tests/test_reproduce.py)."""
  root = tmp_path_factory.mktemp("droplets")
  argv = [droplets.NAME, "--scale", "smoke", "--seeds", "2", "--runs", str(root / "runs"),
          "--out", str(root / "out")]
  with rbg_keys():
    reproduce.main(argv)
  return root, argv


@pytest.mark.slow
def test_smoke_rows_page_panels_and_page_only(smoke):
  root, argv = smoke
  out = root / "out"
  assert campaign.target(droplets.NAME) is droplets.TARGET
  rows = ledger.read(out / "results", droplets.NAME)
  assert sorted(r.unit for r in rows) == sorted(f"{s}-s{k}" for s, _ in droplets.SETTINGS
                                                for k in (0, 1))
  for r in rows:
    assert {"critic_fd", "share_8", "share_16", "ratio_8", "ratio_16"} <= set(r.metrics)
    assert "share_4" not in r.metrics
    assert 0 < r.metrics["share_16"] <= 1 and r.metrics["ratio_16"] > 1
    (config,) = [c for path, c in r.configs.items() if f"{droplets.NAME}/" in path]
    assert config["model"]["spatial_conditioning"] == r.setting
    assert (out / droplets.NAME / f"{r.unit}.png").is_file()
  text = (out / f"{droplets.NAME}.md").read_text()
  table = [l for l in text.split("## Results", 1)[1].splitlines() if l.startswith("| ")][1:4]
  assert [l.split("|")[1].strip() for l in table] == [label for _, label in droplets.SETTINGS]
  assert all(INTERVAL.match(c.strip()) for l in table for c in l.split("|")[3:7]), table
  assert "**6 of 6 units**" in text and "python -m jaxspatial.evaluate" in text
  assert "--config.model.spatial_conditioning=spade" in text
  for r in rows:
    assert f"({droplets.NAME}/{r.unit}.png)" in text
  ET.fromstring((out / f"{droplets.NAME}.svg").read_text())
  before = (out / f"{droplets.NAME}.md").read_bytes(), (out / f"{droplets.NAME}.svg").read_bytes()
  (out / f"{droplets.NAME}.md").unlink()
  (out / f"{droplets.NAME}.svg").unlink()
  reproduce.main([*argv, "--page-only"])
  after = (out / f"{droplets.NAME}.md").read_bytes(), (out / f"{droplets.NAME}.svg").read_bytes()
  assert after == before
