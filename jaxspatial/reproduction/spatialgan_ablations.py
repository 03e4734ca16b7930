"""``spatialgan-ablations``: SpatialGAN's Tables III-V on single-object scenes, at small scale.

Every setting is the ``spatialgan-comove`` aligned run (the ``demo`` preset at 32 channels,
3000 steps from scratch, GradCAM alignment on, as the paper ablates with the alignment) with
one switch changed, so each is read against that run of the same seed:

* **Table III** (architecture): the plain StyleGAN2 (``model.encoding=none``, no alignment:
  ``spatialgan-comove``'s ``stylegan2`` rows), the official **EqGAN-SA** form (a SEL in every
  block on full-resolution heatmaps: ``model.coarse=False``, SELs at 4-32 px) and SpatialGAN's
  coarse form (the ``demo`` preset: SELs at 4, 8, 16 px on heatmaps downsampled to the
  features: ``spatialgan-comove``'s ``aligned`` rows);
* **Table IV** (heatmap input): Gaussian **noise** in place of the heatmaps
  (``model.heatmap_input=noise``), **non-hierarchical** heatmaps
  (``model.heatmaps=independent``) and the hierarchical ones (the aligned rows);
* **Table V** (encoding): the heatmap **flattened** into the latent (``model.encoding=flatten``),
  **SEL_concat** (``model.encoding=concat``) and SEL_norm (the aligned rows).

Measured as ``spatialgan-comove`` measures (critic FD under the shared critic, co-move over
all and over located edits, the located fraction). The rows this target shares with
``spatialgan-comove`` are that target's rows of the same seeds (never retrained here).

Run lengths, ``small``: 3000 steps per run, 256 co-move edits, critic FD 1024 vs 1024;
``smoke``: the ``tiny`` preset initialised, 16 edits and images.
"""

from __future__ import annotations

from jaxspatial.reproduction import ledger, report, runs, spatialgan

NAME = "spatialgan-ablations"

SETTINGS = (("eqgan-sa", "III", "official EqGAN-SA form (SEL in every block)",
             (("model.coarse", False), ("model.sel_resolutions", (4, 8, 16, 32)))),
            ("noise-input", "IV", "Gaussian noise input", (("model.heatmap_input", "noise"),)),
            ("independent", "IV", "non-hierarchical heatmaps",
             (("model.heatmaps", "independent"),)),
            ("flatten", "V", "heatmap flattened into the latent", (("model.encoding", "flatten"),)),
            ("concat", "V", "SEL_concat", (("model.encoding", "concat"),)))
"""(unit setting, paper table, label, overrides of the aligned spatialgan-comove run)."""

SMOKE_OVERRIDES = {"eqgan-sa": (("model.coarse", False),)}
"""At smoke scale (16 px ``tiny``, already a SEL in every block) only the switch applies."""

BORROWED = (("III", "plain StyleGAN2", "stylegan2"),
            ("III, IV, V", "SpatialGAN: coarse, hierarchical, SEL_norm", "aligned"))
"""(tables, label, spatialgan-comove setting) of the shared rows."""

PAPER = {"stylegan2": "8.36", "eqgan-sa": "6.81", "aligned": "6.57",
         "noise-input": "8.33", "independent": "7.03", "flatten": "8.52", "concat": "6.73"}
"""The paper's LSUN Cat FIDs (Tables III-V; lower is better), beside our rows."""

CLAIM = """\
**Claims** (SpatialGAN, TPAMI 2024, Tables III-V, FID at 25 M images; LSUN Cat in the
paper column, the same order on FFHQ and Church): SpatialGAN improves on the EqGAN-SA form,
which improves on StyleGAN2 (III: 8.36 → 6.81 → 6.57); hierarchical heatmaps beat Gaussian
noise (no gain over the baseline) and non-hierarchical heatmaps (IV: 8.33, 7.03, 6.57);
SEL_norm is slightly better than SEL_concat and flattening the heatmap into the latent does
not improve on the baseline (V: 6.57, 6.73, 8.52). Ours: 32 px
single-object shapes scenes, 3000 steps, critic FD in place of FID, and the co-move ratio the
paper reports only for its final form."""

COLUMNS = spatialgan.COLUMNS


def _spec(scale: str, setting: str, seed: int) -> runs.RunSpec:
  overrides = dict((s, o) for s, _, _, o in SETTINGS)[setting]
  if scale == "smoke":
    overrides = SMOKE_OVERRIDES.get(setting, overrides)
  base = spatialgan.run_spec(scale, "aligned", seed)
  return runs.RunSpec(NAME, setting, seed, base.config, base.preset, base.overrides + overrides)


def unit(session: runs.Session, setting: str, seed: int) -> dict[str, float]:
  """Trains (or reuses) the run of ``setting``; its co-move and critic FD."""
  return spatialgan.train_and_measure(session, _spec(session.scale, setting, seed))[1]


def page(units: list[ledger.Row], out, expected: list[str]):
  """The page from the ledger's rows (this target's and the shared spatialgan-comove ones)."""
  def rows_of(target: str, setting: str) -> list:
    return [(u, u.metrics) for u in units if u.target == target and u.setting == setting]

  rows = [report.Row(f"{tables}: {label}", rows_of(spatialgan.NAME, s), PAPER[s])
          for tables, label, s in BORROWED[:1]]
  rows += [report.Row(f"{table}: {label}", rows_of(NAME, s), PAPER[s])
           for s, table, label, _ in SETTINGS]
  rows += [report.Row(f"{tables}: {label}", rows_of(spatialgan.NAME, s), PAPER[s])
           for tables, label, s in BORROWED[1:]]
  reference = rows[-1].label
  paired = [report.Paired(reference, r.label, column) for r in rows[:-1]
            for column in (COLUMNS[3], COLUMNS[1])]
  figure = report.Figure(COLUMNS[3], COLUMNS[1], caption=(
      "Co-move over all edits against critic FD, one faint point per run, each setting's "
      "mean with its 95 % intervals (upper left is better)."))
  notes = ("The plain StyleGAN2 and the SpatialGAN rows are spatialgan-comove's units of the "
           "same seeds (the same runs). The paired table reads each setting against the "
           "SpatialGAN row of the same seed (b − a: the setting minus SpatialGAN).")
  return report.write_page(out, NAME, units, expected, title="SpatialGAN ablations "
                           "(Tables III-V)", claim=CLAIM, columns=COLUMNS, rows=rows,
                           figure=figure, notes=notes, paired=paired)


TARGET = runs.Target(NAME, version=1, settings=tuple(s for s, _, _, _ in SETTINGS), seeds=2,
                     estimate_minutes={"eqgan-sa": 60, "noise-input": 45, "independent": 45,
                                       "flatten": 40, "concat": 45},
                     unit=unit, page=page,
                     borrows=tuple((spatialgan.NAME, s) for _, _, s in BORROWED))
"""Estimates as spatialgan-comove's aligned unit (~45 min on the slowest machine), more for
the EqGAN-SA form (a SEL at 32 px on full-resolution heatmaps)."""
