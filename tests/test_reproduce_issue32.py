"""Issue 32's ledger targets (``ssn-vs-stylegan2``, ``regressor-variation``,
``regressor-alpha-blend``, ``regressor-table3-lit``): the α-blend and the critic-feature PPL
against direct computations, and every target end to end at smoke scale (one row per unit, its
panels, the page rebuilt from rows byte for byte)."""

import re
import xml.etree.ElementTree as ET

import jax
import numpy as np
import pytest

from jaxspatial import reproduce
from jaxspatial.data import collages as collages_lib
from jaxspatial.reproduction import campaign, composition, ledger, runs, ssn_table1

NEW = ("ssn-vs-stylegan2", "regressor-variation", "regressor-alpha-blend",
       "regressor-table3-lit")
INTERVAL = re.compile(r"^-?\d+\.\d+ ± \d+\.\d+$")
PANELS = {"regressor-variation", "regressor-alpha-blend", "regressor-table3-lit"}


def test_feather_and_alpha_blend_against_direct_computation():
  """α = the mean of the mask over the (2r+1)² window (zero outside the image); the blend
  pastes the layers in order with those α; radius 0 is pixel paste."""
  rng = np.random.default_rng(0)
  masks = (rng.uniform(size=(2, 9, 7, 1)) > 0.5).astype(np.float32)
  for r in (1, 2):
    padded = np.pad(masks[..., 0], ((0, 0), (r, r), (r, r)))
    direct = np.stack([[[padded[n, y:y + 2 * r + 1, x:x + 2 * r + 1].mean() for x in range(7)]
                        for y in range(9)] for n in range(2)])[..., None]
    np.testing.assert_allclose(collages_lib.feather(masks, r), direct, atol=1e-6)
  images = rng.uniform(-1, 1, (6, 9, 9, 3)).astype(np.float32)
  objects = np.zeros((6, 9, 9, 2), np.float32)
  objects[:, 2:6, 3:7, 0] = 1
  objects[:, 5:8, 0:3, 1] = 1
  clg = collages_lib.automatic_collages(images, objects, 3, seed=1)
  np.testing.assert_array_equal(collages_lib.alpha_blend(clg, 0), clg.collage)
  canvas = np.zeros_like(clg.collage)
  for p in range(clg.part_images.shape[1]):
    a = collages_lib.feather(clg.part_masks[:, p], 1)
    canvas = a * clg.part_images[:, p] + (1 - a) * canvas
  np.testing.assert_allclose(collages_lib.alpha_blend(clg, 1), canvas, atol=1e-6)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
  """Every new target's units and page at smoke scale with 2 seeds (rbg keys, as
  tests/test_reproduce.py): tiny models at 0 steps, a few images."""
  impl = jax.config.jax_default_prng_impl
  jax.config.update("jax_default_prng_impl", "rbg")
  root = tmp_path_factory.mktemp("issue32")
  argv = ["--scale", "smoke", "--seeds", "2", "--runs", str(root / "runs"), "--out",
          str(root / "out")]
  try:
    reproduce.main([*NEW, *argv])
  finally:
    jax.config.update("jax_default_prng_impl", impl)
  return root, argv


def test_registered_after_the_droplets_in_the_issues_order():
  names = list(campaign.TARGETS)
  at = names.index("ssn-droplets")
  assert names[at + 1:at + 1 + len(NEW)] == list(NEW)
  for name in NEW:
    t = campaign.target(name)
    assert t.name == name and t.seeds >= (3 if name == "ssn-vs-stylegan2" else 2)
    assert set(t.estimate_minutes) == set(t.settings)
    assert all(0 < m <= 60 for m in t.estimate_minutes.values())


@pytest.mark.slow
@pytest.mark.parametrize("name", NEW)
def test_smoke_rows_panels_page_and_page_only(smoke, name):
  root, argv = smoke
  out = root / "out"
  c = campaign.Campaign(out, root / "runs", "smoke", seeds=2)
  rows = ledger.read(out / "results", name)
  assert sorted(r.unit for r in rows) == sorted(u.name for u in c.units(name))
  for r in rows:
    assert r.scale == "smoke" and r.metrics
    assert bool(r.references) == (name != "regressor-variation")   # the maps need no critic
    if name in PANELS and (name != "regressor-table3-lit" or r.setting == "reference"):
      assert (out / name / f"{r.unit}.png").is_file()
  text = (out / f"{name}.md").read_text()
  n = len(rows)
  assert f"**{n} of {n} units**" in text and "Smoke scale" in text
  results = [l for l in text.split("## Results", 1)[1].split("Per run:", 1)[0].splitlines()
             if l.startswith("| ") and not l.startswith("| setting")]
  measured = [l for l in results if not l.split("|")[2].strip() == "0"]
  assert measured and all(sum(bool(INTERVAL.match(c.strip())) for c in l.split("|")[3:]) >= 2
                          for l in measured), results      # each measure ± its interval
  files = [out / f"{name}.md", out / f"{name}.svg"]
  before = [p.read_bytes() if p.exists() else None for p in files]
  for p in files:
    p.unlink(missing_ok=True)
  reproduce.main([name, *argv, "--page-only"])
  assert [p.read_bytes() if p.exists() else None for p in files] == before
  if before[1] is not None:
    ET.fromstring(before[1].decode())


@pytest.mark.slow
def test_the_lit_reference_unit_measures_the_verdict_and_records_both_critics(smoke):
  root, _ = smoke
  out = root / "out"
  (row,) = [r for r in ledger.read(out / "results", composition.LIT)
            if r.unit == "reference-s0"]
  assert set(row.references) == {"critic", "critic-lit"}
  assert row.references["critic-lit"]["sha256"] == ledger.sha256(
      out / "references" / "critic-smoke-lit.npz")
  for prefix in ("", "flat/"):
    assert 0 <= row.metrics[prefix + "auc"] <= 1
    assert row.metrics[prefix + "logit_real_ci"] > 0 and row.metrics[prefix + "fd_paste"] > 0
  lit_critic = [c for path, c in row.configs.items() if "critic-lit" in path]
  assert lit_critic and lit_critic[0]["data"]["lighting"] is True
  text = (out / f"{composition.LIT}.md").read_text()
  assert "## The lit critic's verdict on pixel paste" in text
  assert "compare_composites" in text and "--lighting" in text


@pytest.mark.slow
def test_ppl_critic_against_direct_computation(smoke):
  """``ppl_critic`` on the smoke SSN equals StyleGAN2's PPL computed here with the distance
  written out in numpy: Σ_r mean_hw Σ_c (u_x − u_y)², u the critic's block features
  normalised per pixel over channels."""
  import jaxspatial as js
  from jaxspatial import families
  from jaxspatial.metrics import ppl
  from jaxspatial.nets.critic import read_critic_file
  root, _ = smoke
  workdir = ssn_table1.run_spec("smoke", "ssn", 0).workdir(root / "runs" / "smoke")
  critic = root / "out" / "references" / "critic-smoke.npz"
  got = runs._evaluate(workdir, "ppl_critic", {"critic": str(critic), "num": 8})
  config, d_vars = read_critic_file(critic)
  d = families.build_discriminator(config.model)
  model = js.load(workdir)

  def features(x):
    _, f = d.apply(d_vars, x, return_features=True)
    out = {}
    for r in (8, 4):                            # every D block below the 16 px image
      a = np.asarray(f[r], np.float64)
      out[r] = a / (np.sqrt((a * a).sum(-1, keepdims=True)) + 1e-10)
    return out

  def distance(x, y):
    fx, fy = features(x), features(y)
    return sum(((fx[r] - fy[r]) ** 2).sum(-1).mean(axis=(1, 2)) for r in fx)

  def sample(seed, n):
    z = model.sample_z(seed, 2 * n)
    return model.mapping(z[:n]), model.mapping(z[n:])

  def generate(w):
    return model.synthesize(np.repeat(w[:, None], model.num_ws, axis=1), noise="const")

  direct = ppl.perceptual_path_length(sample, generate, num_samples=8, batch_size=32,
                                      lpips_fn=distance)
  assert got["ppl_critic_wend"] == pytest.approx(direct, rel=5e-3)   # float32 vs float64
  assert got["ppl_critic_wend"] > 0


def test_reusing_targets_follow_their_host_only_while_it_has_units_to_run(tmp_path):
  """regressor-variation measures regressor-table3's RGBM runs: planned right after that
  target's units of the seed when they are missing, at its own priority (before ADA's
  units) once the host's rows are all there."""
  import shutil
  names = ["regressor-variation", "ada-limited-data", "regressor-table3"]
  c = campaign.Campaign(tmp_path, tmp_path / "runs", seeds=1)
  plan = [u.target for u in c.plan(names)]
  assert plan.index("regressor-variation") > plan.index("regressor-table3")
  assert plan.index("regressor-variation") > plan.index("ada-limited-data")
  committed = campaign.ledger.REPO / "docs" / "reproduction" / ledger.RESULTS
  shutil.copytree(committed / "regressor-table3", tmp_path / ledger.RESULTS / "regressor-table3")
  plan = [u.target for u in c.plan(names)]
  assert "regressor-table3" not in plan
  assert plan.index("regressor-variation") < plan.index("ada-limited-data")
