"""``spatialgan-comove``: objects follow their heatmaps when (and only when) G is trained with
the GradCAM alignment (SpatialGAN Table I), at what realism cost.

Three settings of equal size and training budget, each trained from scratch per seed (the
paper's protocol; a warm start from a StyleGAN2 does not learn to follow, docs/spatialgan.md):
``aligned`` (the ``demo`` preset, ``align_weight`` 1), ``align_weight=0`` (the same generator
with its heatmap encoders, no alignment) and a plain StyleGAN2 (``model.encoding=none``: the
same network without heatmap inputs, no alignment), and, beyond the paper, ``aligned-lazy4``:
the alignment lazily (``loss.align_every=4``, the term on every 4th G step at 4× the weight,
as lazy R1; docs/benchmarks.md times it), to see whether the speed option keeps the co-move
effect. Each run is measured by the co-move
ratio both ways -- over the edits whose object was located, and over all edits with an
unlocated edit counting 0 -- the located fraction, and the critic FD under the shared
independent critic.

Run lengths, ``small`` (32 px single-object shapes scenes, the ``demo`` preset at the
StyleGAN2 demo's width, ``model.channel_max=32``: half the iteration time of its 64 channels,
so that a unit fits in an hour of the slowest machine measured; docs/reproduction/README.md
says how that was decided): 3000 steps (48 kimg, batch 16) per run; 256 co-move edits;
critic FD on 1024 generated vs 1024 real images. ``smoke``: the ``tiny`` preset initialised (0 steps), 16 edits and 16 images.
"""

from __future__ import annotations

from jaxspatial.reproduction import ledger, report, runs

NAME = "spatialgan-comove"


Scale = runs.scale_type("num_comove", "num_fd")


SCALES = {
    "small": Scale("demo", (("total_steps", 3000), ("model.channel_max", 32)), 256, 1024),
    "smoke": Scale("tiny", runs.SMOKE_OVERRIDES, 16, 16),
}

SETTINGS = (("aligned", "with alignment", ()),
            ("align0", "align_weight = 0", (("loss.align_weight", 0.0),)),
            ("stylegan2", "plain StyleGAN2 (encoding = none)",
             (("loss.align_weight", 0.0), ("model.encoding", "none"))),
            ("aligned-lazy4", "alignment on every 4th G step, weight × 4",
             (("loss.align_every", 4),)))
"""(run name, table label, config overrides) per setting."""

CLAIM = """\
**Claim** (Wang et al., SpatialGAN, TPAMI 2024, Table I): with the GradCAM alignment, moving a
heatmap centre moves the object under it -- the co-move ratio (object displacement along the
centre's, 1 = moves with it) rises from 0.32 to 0.69 across the paper's variants, with no
realism loss (its FID improves). Ours: 32 px single-object shapes scenes, the shapes locator in
place of Mask R-CNN (docs/spatialgan.md), critic FD in place of FID. The ratio over located
edits averages different subsets for different models (a model that ignores its heatmaps has
an object under the centre only by chance); the ratio over all edits (unlocated = 0) compares
like with like."""

COLUMNS = (report.Column("comove", "co-move (located)", ".2f"),
           report.Column("comove_all", "co-move (all edits) ↑", ".3f"),
           report.Column("comove_valid", "located fraction", ".2f"),
           report.Column("critic_fd", "critic FD ↓", ".3f"))


PAIRED = (report.Paired("align_weight = 0", "with alignment", COLUMNS[1]),
          report.Paired("plain StyleGAN2 (encoding = none)", "with alignment", COLUMNS[1]),
          report.Paired("align_weight = 0", "with alignment", COLUMNS[3]),
          report.Paired("plain StyleGAN2 (encoding = none)", "with alignment", COLUMNS[3]),
          report.Paired("with alignment", "alignment on every 4th G step, weight × 4",
                        COLUMNS[1]),
          report.Paired("with alignment", "alignment on every 4th G step, weight × 4",
                        COLUMNS[3]))
"""On − off of the same seed: co-move over all edits and critic FD; lazy − every step."""


def run_spec(scale: str, setting: str, seed: int) -> runs.RunSpec:
  """The training run of ``setting`` (a :data:`SETTINGS` name) and ``seed`` at ``scale``
  (``drag-table2`` drags on the same runs)."""
  overrides = dict((name, o) for name, _, o in SETTINGS)[setting]
  s = SCALES[scale]
  return runs.RunSpec(NAME, setting, seed, "spatialgan.py", s.preset, s.train + overrides)


def train_and_measure(session: runs.Session, spec: runs.RunSpec
                      ) -> tuple[runs.Run, dict[str, float]]:
  """Trains (or reuses) the SpatialGAN run of ``spec``; the run and its co-move and critic
  FD at the session's scale (every SpatialGAN target measures its runs this way)."""
  scale = SCALES[session.scale]
  critic = session.critic()
  run = session.train(spec)
  return run, session.evaluate(run, "comove,critic_fd", critic=critic, num=scale.num_fd,
                               num_comove=scale.num_comove)


def unit(session: runs.Session, setting: str, seed: int) -> dict[str, float]:
  """Trains (or reuses) the run of ``setting`` and ``seed``; its co-move and critic FD."""
  return train_and_measure(session, run_spec(session.scale, setting, seed))[1]


def page(units: list[ledger.Row], out, expected: list[str]):
  """The page from the ledger's rows."""
  rows = [report.Row(label, [(u, u.metrics) for u in units if u.setting == name])
          for name, label, _ in SETTINGS]
  figure = report.Figure(COLUMNS[3], COLUMNS[1], caption=(
      "Co-move ratio over all edits against critic FD, one faint point per run, each "
      "setting's mean with its 95 % intervals (upper left is better)."))
  return report.write_page(out, NAME, units, expected, title="SpatialGAN: objects follow "
                           "their heatmaps", claim=CLAIM, columns=COLUMNS, rows=rows,
                           figure=figure, paired=PAIRED)


TARGET = runs.Target(NAME, version=1, settings=tuple(name for name, _, _ in SETTINGS),
                     seeds=3, estimate_minutes={"aligned": 45, "align0": 40, "stylegan2": 35,
                                       "aligned-lazy4": 45},
                     unit=unit, page=page)
"""Estimates, the slowest 2-core machine measured (docs/reproduction/README.md): its aligned
64-channel iteration took 1.26 s; at 32 channels ×0.54 (measured side by side here), so
3000 steps ≈ 34 min, the two other settings a little less, plus ~5 min of evaluation."""
