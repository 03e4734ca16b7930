"""Issue 32's latent-regression targets: ``regressor-variation`` (§4.4), ``regressor-alpha-blend``
(§4.3) and ``regressor-table3-lit`` (Table 3 in a world where collages can fail) (Chai, Wulff &
Isola 2021).

``regressor-alpha-blend`` measures the ``regressor-table3`` RGBM regressor of each seed
(against the ``ssn-lambda`` StyleGAN2 source of seed 0; reused from the local cache, trained
when missing), so its units follow that target's seed by seed.

**Variation maps** (§4.4, Fig. 8; :meth:`~jaxspatial.api.regressor.RegressorModel.variation_map`)
of three generator families. The paper compares ProGAN with StyleGAN2; we compare our three
families instead, each by an RGBM regressor (``regressor-table3``'s preset and run length:
9000 steps, no LPIPS) of its family's 32 px demo generator, one generator per family (seed 0,
shared by the seeds, which vary the regressor), of equal width (32 channels) and 3000 steps,
trained from scratch and reused from the local cache where another target made it:

* ``stylegan2``: the ``ssn-lambda`` StyleGAN2 source (the ``demo`` preset, batch 8), and its
  regressor is ``regressor-table3``'s RGBM run of the seed itself (so the target's units
  follow that target's, as ``regressor-alpha-blend``'s);
* ``ssn``: ``ssn-vs-stylegan2``'s SSN at λ_D = 0 (the ``demo`` preset at the StyleGAN2 demo's
  width, batch and learning rates: the architecture alone, without the distortion
  regulariser); its regressor predicts the block-style grid (``losses.regressor``);
* ``spatialgan``: ``spatialgan-comove``'s ``aligned`` run (the ``demo`` preset, batch 16,
  with the GradCAM alignment); its regressor predicts W+ and the heatmap's centres and sigmas.

Per unit: ``num_base`` base collages, each the background of one single-object shapes scene
and the object of another (the SpatialGAN demo draws one object, and single-object scenes are
in the other two's training world as well, so every family is measured on the same
collages), with the object layer replaced by each of ``num_replace`` replacement layers (the
object layers of other collages); ``variance`` = the per-pixel variance of the N composites,
``changed`` = the union of the replacement masks, and the paper's summary statistic ``s_c =
mean over pixels of (1 − changed) ⊙ variance`` (how much the composite varies *outside* the
part that changed; lower = the generator composes more locally). The background is not
varied: the union of N scenes' object-free pixels covers nearly the whole image, leaving no
outside. Reported: the mean ``s_c`` (``leakage``), the mean variance per changed and per
unchanged pixel, and their ratio (outside / inside, per map).

**α-blend** (§4.3): the same collages, parts and masks as Table 3 (``--collage-seed 1000``)
as pixel paste, α-blended (each layer's mask feathered by a box filter of radius 1 and 2 px,
:func:`jaxspatial.data.collages.alpha_blend`), and the regressor's composite G(E(collage, m)):
masked L1 on the pasted pixels, critic FD, density and coverage against as many real scenes.

**Lit Table 3**: the ``regressor-table3`` design in the lit shapes world (``data.lighting``:
one light direction and one horizon per scene): its own StyleGAN2 ``demo`` generator (3000
steps, seed 0, shared by the seeds), RGBM and RGB regressors per seed, and a shared lit critic
(``references/critic-small-lit.npz``: the discriminator of an independent StyleGAN2 ``demo``
on lit scenes, 6000 steps, seed 1000, made by the first unit that needs it). Its
``reference`` units measure what the issue asks first: does the lit critic score pixel-paste
collages clearly worse than real lit scenes? Per seed a fresh draw of 512 collages and 512
real scenes (``--collage-seed 2000 + seed``): the critic's mean logit of each with its 95 %
Student-t interval over images, the AUC of real against paste (the probability that a real
scene scores above a collage), the critic FD of the collages to real scenes beside that of
another real draw; the same under the flat critic (``critic-small.npz``) on flat scenes as
the control in which a paste of parts is a valid scene. The reference units also train the
generator and measure its samples, so the regressor units find it.

Run lengths, ``small`` (32 px): as ``regressor-table3`` (regressors 9000 steps, 512
collages); variation maps on 32 base collages × 16 replacements; the SSN and SpatialGAN
generators 3000 steps (their own targets' runs); the lit generator 3000 steps. ``smoke``:
``tiny`` presets initialised (0 steps), a few images.

Each variation, α-blend and reference unit writes a panel to
``docs/reproduction/<target>/<unit>.png`` (commit it with the row); the pages link the panels
by unit name, so ``--page-only`` rebuilds them from rows.
"""

from __future__ import annotations

import dataclasses
import math
import pathlib

import numpy as np

from jaxspatial.reproduction import ledger, regressor, report, runs, spatialgan, ssn, ssn_table1

VARIATION, ALPHA, LIT = "regressor-variation", "regressor-alpha-blend", "regressor-table3-lit"
VARIATION_SEED = 6000     # base collages and their replacements
VERDICT_SEED = 2000       # the lit critic's verdict: collages of seed VERDICT_SEED + seed
RADII = (1, 2)            # α-blend feathering radii (px at 32 px)
TILE = 64                 # panel tiles (px)


Scale = runs.scale_type("num_collages", "num_base", "num_replace", "num_panel",
                        overrides=("generator",))


SCALES = {
    "small": Scale("demo", (("total_steps", 3000),), 512, 32, 16, 6),
    "smoke": Scale("tiny", runs.SMOKE_OVERRIDES, 8, 2, 2, 2),
}


# --------------------------------------------------------------------------- shared helpers


def _rgbm(session: runs.Session, seed: int):
  """The regressor-table3 RGBM regressor of ``seed`` (its run, its loaded model)."""
  from jaxspatial.api.regressor import load_regressor
  run = regressor._regressor(session, "rgbm", seed)
  return run, load_regressor(str(run.workdir))


def panel_path(out: pathlib.Path, target: str, setting: str, seed: int) -> pathlib.Path:
  return pathlib.Path(out) / target / f"{ledger.unit_name(setting, seed)}.png"


def save_panel(columns: list[np.ndarray], path: pathlib.Path) -> pathlib.Path:
  """A mosaic of equally long columns of images (n, H, W, 3) in [-1, 1] (or (n, H, W) grey
  maps in [0, 1]), a row per index, every tile :data:`TILE` px (nearest)."""
  from PIL import Image
  from jaxspatial import imageio
  tiles = []
  for c in columns:
    c = np.asarray(c, np.float32)
    if c.ndim == 3:
      c = np.repeat(c[..., None], 3, axis=-1) * 2.0 - 1.0
    c = imageio.to_uint8(c)
    tiles.append(c.repeat(TILE // c.shape[1], 1).repeat(TILE // c.shape[2], 2))
  mosaic = imageio.grid(np.stack(tiles, 1).reshape(-1, TILE, TILE, 3), cols=len(tiles))
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp.png")
  Image.fromarray(mosaic).save(tmp)
  tmp.replace(path)
  return path


def _panel_table(target: str, units: list[ledger.Row], title: str, caption: str) -> str:
  """Markdown: each unit's panel, a row per setting and a column per seed."""
  seeds = sorted({u.seed for u in units})
  if not seeds:
    return ""
  have = {(u.setting, u.seed) for u in units}
  settings = list(dict.fromkeys(u.setting for u in units))
  lines = [f"## Figure: {title}", "", caption, "",
           "| | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|---|" + "---|" * len(seeds)]
  for setting in settings:
    cells = [f"![{setting}, seed {s}]({target}/{ledger.unit_name(setting, s)}.png)"
             if (setting, s) in have else "–" for s in seeds]
    lines.append(f"| {setting} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def image_measures(critic, images: np.ndarray, real_features: np.ndarray,
                   collage: np.ndarray | None = None, mask: np.ndarray | None = None
                   ) -> dict[str, float]:
  """``compare_composites``' measures of one method's images: masked L1 against the collage
  on the pasted pixels (when given), critic FD, PRDC density and coverage (k = 5) against
  ``real_features``, and the mean critic logit."""
  from jaxspatial.metrics import critic as critic_lib
  from jaxspatial.metrics import prdc
  from jaxspatial.metrics.masked_l1 import masked_l1
  feats = critic_lib.batched_features(critic, images)
  pr = prdc.prdc(real_features, feats, nearest_k=5)
  out = {"critic_fd": critic_lib.frechet_from_features(feats, real_features),
         "density": pr["density"], "coverage": pr["coverage"],
         "critic_logit": float(np.mean(_logits(critic, images)))}
  if collage is not None:
    out["masked_l1"] = float(np.mean(np.asarray(masked_l1(images, collage, mask))))
  return out


def _logits(critic, images: np.ndarray, batch: int = 64) -> np.ndarray:
  return np.concatenate([np.asarray(critic.logits(images[i:i + batch]))
                         for i in range(0, len(images), batch)])


# --------------------------------------------------------------------------- regressor-variation


VARIATION_SETTINGS = (
    ("stylegan2", "StyleGAN2", lambda scale: ssn.source_spec(scale, 0)),
    ("ssn", "SSN, λ_D = 0", lambda scale: ssn_table1.run_spec(scale, ssn_table1.SSN, 0)),
    ("spatialgan", "SpatialGAN, aligned", lambda scale: spatialgan.run_spec(scale, "aligned", 0)))
"""(setting, the page's label, the generator's run spec at a scale: another target's run of
seed 0, shared by the seeds)."""
PANEL_BASES = 4           # base collages drawn in a unit's panel


def variation_regressor_spec(scale: str, setting: str, seed: int, generator: str
                             ) -> runs.RunSpec:
  """The RGBM regressor of ``setting`` and ``seed`` against ``generator``: for StyleGAN2
  ``regressor-table3``'s own run (the same spec), for the other families the same preset and
  overrides under this target's name."""
  spec = regressor.run_spec(scale, "rgbm", seed, generator)
  return spec if setting == "stylegan2" else dataclasses.replace(spec, target=VARIATION,
                                                                 setting=setting)


def variation_measures(model, scale: Scale, panel: pathlib.Path | None = None,
                       bases: int | None = None) -> dict[str, float]:
  """The variation-map statistics of one regressor (module docstring) over the first
  ``bases`` base collages (default all) and, with ``panel``, its figure: a row per base
  collage, the collage, three of the composites and the variance map (grey, scaled to the
  panel's largest variance), the changed region last."""
  from jaxspatial.data import collages as collages_lib
  res = model.resolution
  n_base, n_rep = scale.num_base, scale.num_replace
  clg = collages_lib.shapes_collages(n_base + n_rep, res, objects=1, pool=64,
                                     seed=VARIATION_SEED, max_objects=1)
  replacements = (clg.part_images[n_base:, 1], clg.part_masks[n_base:, 1])
  leak, inside, outside, ratio, drawn = [], [], [], [], []
  for b in range(n_base if bases is None else min(bases, n_base)):
    parts = [(clg.part_images[b:b + 1, q], clg.part_masks[b:b + 1, q]) for q in range(2)]
    vm = model.variation_map(parts, 1, replacements)
    changed = vm.changed > 0
    v_in = float(vm.variance[changed].mean()) if changed.any() else math.nan
    v_out = float(vm.variance[~changed].mean()) if (~changed).any() else math.nan
    leak.append(vm.leakage)
    inside.append(v_in)
    outside.append(v_out)
    ratio.append(v_out / v_in if v_in > 0 else math.nan)
    drawn.append((clg.collage[b], vm.composites[:3], vm.variance, vm.changed))
  out = {"leakage": float(np.mean(leak)), "variance_inside": float(np.nanmean(inside)),
         "variance_outside": float(np.nanmean(outside)),
         "outside_inside_ratio": float(np.nanmean(ratio))}
  if panel is not None:
    top = max(float(v.max()) for _, _, v, _ in drawn) or 1.0
    k = min(3, n_rep)
    save_panel([np.stack([c for c, _, _, _ in drawn]),
                *(np.stack([comp[j] for _, comp, _, _ in drawn]) for j in range(k)),
                np.stack([v / top for _, _, v, _ in drawn]),
                np.stack([m for _, _, _, m in drawn])], panel)
  return out


def variation_unit(session: runs.Session, setting: str, seed: int) -> dict[str, float]:
  """The family's generator (seed 0; trained or reused), the RGBM regressor of ``seed``
  against it (trained or reused) and its variation maps."""
  from jaxspatial.api.regressor import load_regressor
  scale = SCALES[session.scale]
  spec = dict((name, g) for name, _, g in VARIATION_SETTINGS)[setting](session.scale)
  generator = session.train(spec)
  run = session.train(variation_regressor_spec(session.scale, setting, seed,
                                               runs.display(generator.workdir)))
  model = load_regressor(str(run.workdir))
  key = (f"{VARIATION} single-object collages, base={scale.num_base} "
         f"replace={scale.num_replace} seed={VARIATION_SEED}")
  out = session.measure(run, key, lambda: variation_measures(model, scale))
  variation_measures(model, scale, panel_path(session.out, VARIATION, setting, seed),
                     bases=PANEL_BASES)
  return out


VARIATION_COLUMNS = (report.Column("leakage", "s_c ↓", ".4f"),
                     report.Column("variance_inside", "variance per changed pixel", ".4f"),
                     report.Column("variance_outside", "variance per unchanged pixel ↓",
                                   ".4f"),
                     report.Column("outside_inside_ratio", "outside / inside per pixel ↓",
                                   ".3f"))

VARIATION_CLAIM = """\
**Claim** (Chai et al. 2021, §4.4 and Fig. 8): the regressor exposes how compositional a
generator is: replacing one part of a collage changes the composite mostly inside that part,
and how much it leaks outside (the summary statistic s_c, the mean variance outside the
changed region) differs between architectures. **The paper compares ProGAN with StyleGAN2;
we compare our three families instead** -- StyleGAN2, SSN (spatially stochastic latent
blocks) and SpatialGAN (heatmap-conditioned), each with a regressor of its own latent: W+,
the SSN's grid of block styles per layer, W+ and the SpatialGAN's heatmap. The paper's
numbers are not quoted here (not checked against the paper in this checkout), and there is no
paper value for SSN or SpatialGAN. Ours: 32 px single-object shapes collages, the same for
every family, an RGBM regressor per seed of one demo generator per family (equal width and
training steps)."""


def variation_page(units: list[ledger.Row], out, expected: list[str]):
  """The page from the ledger's rows (panels linked by unit name)."""
  rows = [report.Row(label, [(u, u.metrics) for u in units if u.setting == name])
          for name, label, _ in VARIATION_SETTINGS]
  order = [name for name, _, _ in VARIATION_SETTINGS]
  s = SCALES["small"]
  figure = report.Figure(VARIATION_COLUMNS[1], VARIATION_COLUMNS[0], caption=(
      "s_c against the variance per changed pixel, one faint point per seed, each family's "
      "mean with its 95 % intervals (lower s_c at the same change inside = more local)."))
  notes = (f"Per unit: {s.num_base} base collages (`shapes_collages(objects=1, "
           f"max_objects=1)`, seed {VARIATION_SEED}: the background of one single-object "
           "scene and the object of another), the object layer replaced by that of "
           f"{s.num_replace} other collages; s_c = mean over all pixels of (1 − changed) ⊙ "
           "variance, the variance per pixel of the composites (mean over RGB, [-1, 1] "
           "units) and `changed` the union of the replacement masks "
           "(`RegressorModel.variation_map`); the per-pixel variances are means over the "
           "changed and the unchanged pixels, and the ratio is taken per map, then averaged. "
           "Seeds vary the regressor (RGBM, 9000 steps, no LPIPS); each family has one "
           "generator (seed 0, 32 channels, 3000 steps): StyleGAN2 the `ssn-lambda` source "
           "(batch 8; its regressors are regressor-table3's RGBM runs), SSN "
           "`ssn-vs-stylegan2`'s λ_D = 0 run (batch 8), SpatialGAN `spatialgan-comove`'s "
           "aligned run (batch 16). The SSN regressor predicts the block-style grid "
           "(n, num_ws, 4, 4, w_dim) from a head pooled to the 4×4 grid; the SpatialGAN "
           "regressor W+ and the heatmap's 7 centres and sigmas, rendered by G (docs/"
           "regressor.md). Train seconds: the regressor's; eval seconds: the measurement "
           "alone.\n\n" +
           _panel_table(VARIATION, sorted(units, key=lambda u: order.index(u.setting)),
                        "variation maps (the paper's Fig. 8)", (
               f"Per panel, a row per base collage (the first {PANEL_BASES}): the collage, "
               "three composites with its object replaced, the variance map (grey, scaled to "
               "the panel's largest) and the changed region.")))
  return report.write_page(out, VARIATION, units, expected, title="Latent regression: "
                           "variation maps per architecture (§4.4)", claim=VARIATION_CLAIM,
                           columns=VARIATION_COLUMNS, rows=rows, figure=figure, notes=notes)


VARIATION_TARGET = runs.Target(
    VARIATION, version=1, settings=tuple(n for n, _, _ in VARIATION_SETTINGS), seeds=2,
    estimate_minutes={"stylegan2": 40, "ssn": 45, "spatialgan": 55}, unit=variation_unit,
    page=variation_page, reuses=regressor.TABLE3)
"""Estimates: ``stylegan2`` ~3 min of measurement when regressor-table3's RGBM run of the seed
is in the local cache, its training (~25 min) and the shared generator's (~12 min) when not;
``ssn`` and ``spatialgan`` train their regressor (~25 min for StyleGAN2's; an SSN's G costs
about as much, a SpatialGAN's more, with its heatmap embeddings) and, in the first unit when
the cache lacks it, the generator (SSN ~15 min, SpatialGAN ~35 min)."""


# --------------------------------------------------------------------------- regressor-alpha-blend


ALPHA_METHODS = ("pixel paste", *(f"α-blend, {r} px" for r in RADII), "RGBM regressor")


def alpha_images(model, scale: Scale, num: int | None = None):
  """(the collages, method name -> images) of the first ``num`` (default all) of Table 3's
  collages (``--collage-seed 1000``, drawn from the same pool however many are taken)."""
  from jaxspatial.data import collages as collages_lib
  res, seed = model.resolution, regressor.COLLAGE_SEED
  clg = collages_lib.shapes_collages(num or scale.num_collages, res,
                                     pool=max(64, scale.num_collages), seed=seed)
  return clg, {"pixel paste": clg.collage,
               **{f"α-blend, {r} px": collages_lib.alpha_blend(clg, r) for r in RADII},
               "RGBM regressor": model.inpaint(clg.collage, clg.mask)}


def alpha_measures(model, critic_path: str, scale: Scale) -> dict[str, float]:
  """``<method>/<measure>`` for pixel paste, the α-blends and the regressor on Table 3's
  collages, against as many real scenes (seed 1001, as ``compare_composites``)."""
  from jaxspatial.metrics import composites
  from jaxspatial.metrics import critic as critic_lib
  from jaxspatial.metrics.registry import open_critic
  critic = open_critic(critic_path)
  clg, images = alpha_images(model, scale)
  real = critic_lib.batched_features(critic, composites.shapes_real(
      scale.num_collages, critic.resolution, regressor.COLLAGE_SEED + 1))
  return {f"{name}/{k}": v for name, x in images.items()
          for k, v in image_measures(critic, x, real, clg.collage, clg.mask).items()}


def alpha_unit(session: runs.Session, setting: str, seed: int) -> dict[str, float]:
  """Pixel paste, α-blends and the RGBM regressor of ``seed`` on the same collages."""
  scale = SCALES[session.scale]
  critic = session.critic()
  run, model = _rgbm(session, seed)
  key = f"{ALPHA} num={scale.num_collages} radii={RADII} collage_seed={regressor.COLLAGE_SEED}"
  out = session.measure(run, key, lambda: alpha_measures(model, critic, scale))
  _, images = alpha_images(model, scale, scale.num_panel)
  save_panel(list(images.values()), panel_path(session.out, ALPHA, setting, seed))
  return out


ALPHA_COLUMNS = (*regressor.TABLE3_COLUMNS, report.Column("critic_logit", "critic logit ↑",
                                                          ".3f"))

ALPHA_CLAIM = """\
**Claim** (Chai et al. 2021, §4.3): the regressor's composite is more realistic than simply
blending the parts: α-blending softens the seams but leaves the parts as inconsistent as
pixel paste, while G(E(collage)) re-renders them as one image, at some cost in fidelity to the
pasted pixels. Ours: the same 32 px shapes collages, parts and masks for every method (Table
3's, `--collage-seed 1000`), α-blending with each mask feathered by a box filter of radius 1
and 2 px; realism in the shared critic's features. Caveat: on flat shapes scenes a pixel
paste of parts is already close to a valid scene (see `regressor-table3-lit`)."""


def alpha_page(units: list[ledger.Row], out, expected: list[str]):
  """The page from the ledger's rows."""
  rows = []
  for m in ALPHA_METHODS:
    runs_ = [(u, {**{c.key: u.metrics.get(f"{m}/{c.key}", np.nan) for c in ALPHA_COLUMNS},
                  "eval_seconds": u.metrics.get("eval_seconds", np.nan)}) for u in units]
    rows.append(report.Row(m, runs_, trained=m == "RGBM regressor"))
  paired = [report.Paired(a, "RGBM regressor", c) for a in ALPHA_METHODS[:-1]
            for c in ALPHA_COLUMNS[1:3]]
  figure = report.Figure(ALPHA_COLUMNS[0], ALPHA_COLUMNS[1], caption=(
      "Masked L1 against critic FD, one faint point per seed, each method's mean with its "
      "95 % intervals (lower left is better)."))
  s = SCALES["small"]
  notes = (f"{s.num_collages} collages, the same for every seed and method: pixel paste and "
           "the α-blends do not depend on the seed (interval 0); the regressor row is the "
           "regressor-table3 RGBM regressor of each seed. Masked L1 is taken on the union of "
           "the pasted masks against the pixel-paste collage.\n\n" + _panel_table(
               ALPHA, units, "collages, α-blends and composites", (
                   "Per panel, a row per collage: pixel paste, α-blend at 1 and 2 px, the "
                   "RGBM composite.")))
  return report.write_page(out, ALPHA, units, expected, title="Latent regression: composites "
                           "against α-blended collages and pixel paste (§4.3)", claim=ALPHA_CLAIM,
                           columns=ALPHA_COLUMNS, rows=rows, figure=figure, notes=notes,
                           paired=paired)


ALPHA_TARGET = runs.Target(ALPHA, version=1, settings=("rgbm",), seeds=2,
                           estimate_minutes={"rgbm": 40}, unit=alpha_unit, page=alpha_page,
                           reuses=regressor.TABLE3)
"""Estimates: as regressor-variation (a few minutes when the RGBM run is cached)."""


# --------------------------------------------------------------------------- regressor-table3-lit


LIT_OVERRIDE = (("data.lighting", True),)


def generator_spec(scale: str) -> runs.RunSpec:
  """The lit world's StyleGAN2 (the ``demo`` preset, 3000 steps, seed 0), shared by every
  seed's regressors."""
  s = SCALES[scale]
  return runs.RunSpec(LIT, "generator", 0, "stylegan2.py", s.preset, s.generator + LIT_OVERRIDE)


def lit_regressor_spec(scale: str, setting: str, seed: int, generator: str) -> runs.RunSpec:
  overrides = dict((name, o) for name, _, o in regressor.SETTINGS)[setting]
  s = regressor.SCALES[scale]
  return runs.RunSpec(LIT, setting, seed, "regressor.py", s.preset,
                      (("generator", generator),) + s.train + overrides + LIT_OVERRIDE)


def _t_interval(values: np.ndarray) -> tuple[float, float]:
  mean, half, _ = report.interval(list(map(float, values)))
  return mean, half


def verdict(critic_path: str, num: int, seed: int, lighting: bool) -> dict[str, float]:
  """The critic's verdict on pixel paste: mean logits (with 95 % half-widths over images) of
  ``num`` real scenes and ``num`` collages of seed ``seed`` (same world), the AUC of real
  against collage, and the critic FD of the collages and of another real draw to the real
  scenes."""
  from jaxspatial.data import collages as collages_lib
  from jaxspatial.metrics import composites
  from jaxspatial.metrics import critic as critic_lib
  from jaxspatial.metrics.registry import open_critic
  from scipy import stats
  critic = open_critic(critic_path)
  res = critic.resolution
  real = composites.shapes_real(num, res, seed + 1, lighting)
  other = composites.shapes_real(num, res, seed + 2, lighting)
  paste = collages_lib.shapes_collages(num, res, pool=max(64, num), seed=seed,
                                       lighting=lighting).collage
  lr, lp = _logits(critic, real), _logits(critic, paste)
  feats = {k: critic_lib.batched_features(critic, x) for k, x in
           (("real", real), ("other", other), ("paste", paste))}
  u = stats.mannwhitneyu(lr, lp).statistic
  (mr, hr), (mp, hp) = _t_interval(lr), _t_interval(lp)
  return {"logit_real": mr, "logit_real_ci": hr, "logit_paste": mp, "logit_paste_ci": hp,
          "auc": float(u / (len(lr) * len(lp))),
          "fd_paste": critic_lib.frechet_from_features(feats["paste"], feats["real"]),
          "fd_real": critic_lib.frechet_from_features(feats["other"], feats["real"])}


def lit_panel(num: int, pool: int, resolution: int, seed: int, path: pathlib.Path
              ) -> pathlib.Path:
  """The first ``num`` real lit scenes and pixel-paste collages of :func:`verdict`'s draw
  (``pool``: its number of images), a column each."""
  from jaxspatial.data import collages as collages_lib
  from jaxspatial.metrics import composites
  return save_panel([composites.shapes_real(num, resolution, seed + 1, True),
                     collages_lib.shapes_collages(num, resolution, pool=max(64, pool), seed=seed,
                                                  lighting=True).collage], path)


def lit_unit(session: runs.Session, setting: str, seed: int) -> dict[str, float]:
  """``reference``: the lit critic (made once), the lit generator (shared; trained once),
  the critic's verdict on collages (lit, and flat as the control), the generator's samples
  and the panel; ``rgbm`` / ``rgb``: that regressor's rows of the lit Table 3."""
  from jaxspatial.api.regressor import load_regressor
  from jaxspatial.metrics import composites
  from jaxspatial.metrics.registry import open_critic
  scale, reg_scale = SCALES[session.scale], regressor.SCALES[session.scale]
  critic = session.critic(lighting=True)
  if setting == "reference":
    flat = session.critic()
    generator = session.train(generator_spec(session.scale))
    num = reg_scale.num_collages
    key = f"{LIT} verdict num={num} seed={VERDICT_SEED + seed}"
    out = session.measure(generator, key, lambda: {
        **verdict(critic, num, VERDICT_SEED + seed, True),
        **{f"flat/{k}": v for k, v in verdict(flat, num, VERDICT_SEED + seed, False).items()}})
    samples = session.evaluate(generator, "critic_fd", critic=critic, num=num)
    out = {**out, "samples/critic_fd": samples["critic_fd"],
           "eval_seconds": out["eval_seconds"] + samples["eval_seconds"]}
    lit_panel(scale.num_panel, num, open_critic(critic).resolution, VERDICT_SEED + seed,
              panel_path(session.out, LIT, setting, seed))
    return out
  generator = session.train(generator_spec(session.scale))
  run = session.train(lit_regressor_spec(session.scale, setting, seed,
                                         runs.display(generator.workdir)))
  name = "RGBM" if setting == "rgbm" else "RGB"
  argv = ["python", "-m", "jaxspatial.compare_composites", "--critic", critic, "--regressor",
          f"{name}={runs.display(run.workdir)}", "--num", str(reg_scale.num_collages),
          "--collage-seed", str(regressor.COLLAGE_SEED), "--lighting",
          *(["--rgb-fill"] if setting == "rgb" else [])]
  command = " ".join(argv)
  session.commands.append(command)
  wanted = {"rgbm": (composites.PASTE, "RGBM", "real scenes (reference)",
                     "generator samples (reference)"), "rgb": ("RGB", "RGB fill")}[setting]

  def compute():
    table, _, _ = composites.compare(
        {name: load_regressor(str(run.workdir))}, open_critic(critic), reg_scale.num_collages,
        collage_seed=regressor.COLLAGE_SEED, rgb_fill=setting == "rgb", lighting=True)
    return {f"{r['method']}/{m}": r[m] for r in table for m in composites.MEASURES
            if r[m] is not None and r["method"] in wanted}

  return session.measure(run, command, compute)


LIT_METHODS = (("real scenes (reference)", "rgbm", "real lit scenes (reference)"),
               ("generator samples (reference)", "rgbm", "generator samples (reference)"),
               ("pixel paste", "rgbm", "pixel paste"), ("RGB", "rgb", "RGB"),
               ("RGB fill", "rgb", "RGB fill"), ("RGBM", "rgbm", "RGBM"))
"""(method in the unit's metrics, the setting that measures it, the page's label)."""

LIT_CLAIM = """\
**Claim** (Chai et al. 2021, Table 3, and the premise of the whole paper): a collage of
parts of different images is unrealistic -- its parts disagree -- and the regressor repairs
it; of the three inputs RGBM is best (paper, StyleGAN2 church, L1 / FID / density /
coverage: RGB 0.200 / 31.17 / 0.51 / 0.58, RGB Fill 0.197 / 33.68 / 0.50 / 0.54, RGBM 0.172
/ 25.14 / 0.73 / 0.69). On flat shapes scenes a paste of parts is already a valid scene, so
`regressor-table3` could not test this; here every scene has one light direction (shading
and shadows) and one horizon, so a collage of parts of several scenes shows several (issue
32). First question: does a critic trained on real lit scenes score pixel-paste collages
clearly worse than real ones (below, with the flat world as the control)? Then Table 3 in
that world, with the real scenes and the generator's samples as reference rows. Ours: 32 px
lit shapes, the lit critic's features in place of Inception / VGG, no LPIPS in training."""

VERDICT_COLUMNS = (report.Column("logit_real", "critic logit, real scenes ↑", ".3f"),
                   report.Column("logit_paste", "critic logit, pixel paste", ".3f"),
                   report.Column("auc", "AUC real vs paste", ".3f"),
                   report.Column("fd_real", "critic FD, another real draw", ".3f"),
                   report.Column("fd_paste", "critic FD, pixel paste", ".3f"))


def _verdict_section(units: list[ledger.Row]) -> str:
  """The critic's verdict: per world, the reference units' numbers over draws (seeds), the
  paired paste − real logit gap, and each draw's per-image intervals."""
  refs = [u for u in units if u.setting == "reference"]
  if not refs:
    return ""
  rows = [report.Row(world, [(u, {c.key: u.metrics.get(prefix + c.key, np.nan)
                                  for c in VERDICT_COLUMNS} | {"eval_seconds": np.nan})
                             for u in refs], trained=False)
          for world, prefix in (("lit world, lit critic", ""),
                                ("flat world, flat critic (control)", "flat/"))]
  gap = report.Column("gap", "logit gap paste − real", ".3f")
  worlds = {rows[0].label: "lit", rows[1].label: "flat"}
  gaps = [report.Row(f"{kind} ({worlds[r.label]})", [(u, {"gap": m[f"logit_{kind}"]})
                                                     for u, m in r.runs])
          for r in rows for kind in ("real", "paste")]
  lines = ["## The lit critic's verdict on pixel paste", "",
           "Per seed, a fresh draw of real scenes and pixel-paste collages of the same world "
           f"(collage seed {VERDICT_SEED} + seed); the interval is across draws (the critics "
           "are fixed files). AUC: the probability that a real scene scores above a collage "
           "(0.5 = indistinguishable). The collages' claim holds in a world if paste scores "
           "clearly below real there.", "", *report.tables(VERDICT_COLUMNS, rows), "",
           *report.paired_table(gaps, [report.Paired(f"real ({w})", f"paste ({w})", gap)
                                       for w in worlds.values()]), "",
           "Per image (each draw: mean logit ± the 95 % Student-t half-width over its images):",
           "", "| world | seed | real scenes | pixel paste |", "|---|---|---|---|"]
  for world, prefix in (("lit", ""), ("flat (control)", "flat/")):
    for u in refs:
      m = u.metrics
      lines.append(f"| {world} | {u.seed} | {m[prefix + 'logit_real']:.3f} ± "
                   f"{m[prefix + 'logit_real_ci']:.3f} | {m[prefix + 'logit_paste']:.3f} ± "
                   f"{m[prefix + 'logit_paste_ci']:.3f} |")
  return "\n".join(lines)


def lit_page(units: list[ledger.Row], out, expected: list[str]):
  """The page from the ledger's rows."""
  columns = (*regressor.TABLE3_COLUMNS, report.Column("critic_logit", "critic logit ↑", ".3f"))
  rows = []
  for method, setting, label in LIT_METHODS:
    runs_ = [(u, {**{c.key: u.metrics.get(f"{method}/{c.key}", np.nan) for c in columns},
                  "eval_seconds": u.metrics.get("eval_seconds", np.nan)})
             for u in units if u.setting == setting]
    rows.append(report.Row(label, runs_, regressor.TABLE3_PAPER.get(method, ""),
                           trained=method in ("RGB", "RGB fill", "RGBM")))
  figure = report.Figure(columns[0], columns[2], caption=(
      "Masked L1 against density in the lit world, one faint point per seed, each method's "
      "mean with its 95 % intervals (lower right is better)."))
  s = regressor.SCALES["small"]
  notes = (f"Table 3 rows: {s.num_collages} lit collages (`--collage-seed "
           f"{regressor.COLLAGE_SEED}`), the same for every seed, so the reference rows and "
           "pixel paste (no training, one generator and one critic) have the same numbers for "
           "every seed and an interval of 0; RGB and RGB fill are one RGB regressor per seed "
           "fed two inputs. The generator is one lit StyleGAN2 `demo` (3000 steps, seed 0) "
           "for every seed, trained by the first unit that needs it.\n\n" +
           _verdict_section(units) + "\n\n" +
           _panel_table(LIT, [u for u in units if u.setting == "reference"],
                        "real lit scenes and pixel-paste collages",
                        "Per panel, a row per image: a real lit scene (left) and a collage of "
                        "lit scenes' parts (right), of the verdict's draw."))
  return report.write_page(out, LIT, units, expected, title="Latent regression in the lit "
                           "world: Table 3 where collages can fail", claim=LIT_CLAIM,
                           columns=columns, rows=rows, figure=figure, notes=notes,
                           paired=regressor.TABLE3_PAIRED)


LIT_TARGET = runs.Target(LIT, version=1, settings=("reference", "rgbm", "rgb"), seeds=2,
                         estimate_minutes={"reference": 45, "rgbm": 40, "rgb": 40},
                         unit=lit_unit, page=lit_page)
"""Estimates: ``reference`` ≈ 23 min for the lit critic (6000 demo steps, the first unit
only) + 12 min for the lit generator + a few of measurement; a regressor unit ≈ 25 min of
training (a 9000-step regressor took ~18 min under a shared load) + its comparison, ~12 min
more when the generator is not in the local cache."""
