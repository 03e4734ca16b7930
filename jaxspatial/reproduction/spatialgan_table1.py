"""``spatialgan-table1``: SpatialGAN's Table I ladder on multi-object (indoor-like) scenes.

The paper's four rungs on LSUN Bedroom, each adding one piece of the journal version to its
conference form (EqGAN-SA), as four settings trained from scratch on 3-object shapes scenes
(the ``demo_indoor`` preset at 32 channels, 3000 steps, alignment on in every rung):

1. ``conference``: hierarchical single-object heatmaps, SEL_norm, the plain alignment
   (``model.heatmaps=hierarchical``, ``model.encoding=norm``, ``loss.align_objective=plain``);
2. ``multi``: + multi-object heatmap sampling (one sub-heatmap per object,
   ``model.heatmaps=multi``);
3. ``sel-indoor``: + SEL_indoor (one style code per object, ``model.encoding=indoor``);
4. ``align-indoor``: + the indoor alignment objective (``loss.align_objective=min``): the
   ``demo_indoor`` preset itself.

Each run is measured by the co-move ratio (a random object's centre moved; over all edits
and over located ones, with the located fraction) and the critic FD under the shared critic
against real 3-object scenes. Adjacent rungs of one seed are paired.

Run lengths, ``small``: 3000 steps (48 kimg, batch 16), 256 co-move edits, critic FD 1024
vs 1024. ``smoke``: the ``tiny`` preset with the rungs' switches, initialised only.
"""

from __future__ import annotations

from jaxspatial.reproduction import ledger, report, runs, spatialgan

NAME = "spatialgan-table1"

_INDOOR = (("data.num_objects", 3), ("data.max_objects", 3), ("model.num_objects", 3))
"""The scenes and heatmaps of every rung: three objects (the ``demo_indoor`` preset's)."""

SETTINGS = (("conference", "conference form (EqGAN-SA)", "0.32",
             (("model.heatmaps", "hierarchical"), ("model.encoding", "norm"),
              ("loss.align_objective", "plain"))),
            ("multi", "+ multi-object sampling", "0.41",
             (("model.heatmaps", "multi"), ("model.encoding", "norm"),
              ("loss.align_objective", "plain"))),
            ("sel-indoor", "+ SEL_indoor", "0.62",
             (("model.heatmaps", "multi"), ("model.encoding", "indoor"),
              ("loss.align_objective", "plain"))),
            ("align-indoor", "+ align_indoor", "0.69",
             (("model.heatmaps", "multi"), ("model.encoding", "indoor"),
              ("loss.align_objective", "min"))))
"""(setting, the paper's row, its co-move ratio, overrides)."""

SCALES = {"small": ("demo_indoor", (("total_steps", 3000), ("model.channel_max", 32))),
          "smoke": ("tiny", runs.SMOKE_OVERRIDES)}

CLAIM = """\
**Claim** (SpatialGAN, TPAMI 2024, Table I, LSUN Bedroom): each piece of the journal version
raises the co-move ratio on multi-object scenes: conference form 0.32 → + multi-object
sampling 0.41 → + SEL_indoor 0.62 → + align_indoor 0.69. Ours: 32 px shapes scenes with three
objects, the shapes locator in place of Mask R-CNN, critic FD beside it; the ratio over all
edits (unlocated = 0) compares like with like, the ratio over located edits is the paper's."""

COLUMNS = spatialgan.COLUMNS

PAIRED = tuple(report.Paired(a[1], b[1], column)
               for a, b in zip(SETTINGS, SETTINGS[1:]) for column in (COLUMNS[1], COLUMNS[3]))
"""Each rung against the one below it, same seed: co-move over all edits, critic FD."""


def _spec(scale: str, setting: str, seed: int) -> runs.RunSpec:
  preset, train = SCALES[scale]
  overrides = dict((s, o) for s, _, _, o in SETTINGS)[setting]
  return runs.RunSpec(NAME, setting, seed, "spatialgan.py", preset, train + _INDOOR + overrides)


def unit(session: runs.Session, setting: str, seed: int) -> dict[str, float]:
  """Trains (or reuses) the rung's run; its co-move and critic FD."""
  scale = spatialgan.SCALES[session.scale]
  critic = session.critic()
  run = session.train(_spec(session.scale, setting, seed))
  return session.evaluate(run, "comove,critic_fd", critic=critic, num=scale.num_fd,
                          num_comove=scale.num_comove)


def page(units: list[ledger.Row], out, expected: list[str]):
  """The page from the ledger's rows."""
  rows = [report.Row(label, [(u, u.metrics) for u in units if u.setting == s], paper)
          for s, label, paper, _ in SETTINGS]
  figure = report.Figure(COLUMNS[3], COLUMNS[1], caption=(
      "Co-move over all edits against critic FD, one faint point per run, each rung's mean "
      "with its 95 % intervals (upper left is better)."))
  return report.write_page(out, NAME, units, expected, title="SpatialGAN on multi-object "
                           "scenes: Table I's ladder", claim=CLAIM, columns=COLUMNS, rows=rows,
                           figure=figure, paired=PAIRED)


TARGET = runs.Target(NAME, version=1, settings=tuple(s for s, _, _, _ in SETTINGS), seeds=3,
                     estimate_minutes={"conference": 55, "multi": 55, "sel-indoor": 60,
                                       "align-indoor": 60},
                     unit=unit, page=page)
"""Estimates: ``demo_indoor`` has a SEL in every block (4-32 px), slower than the
single-object demo's three; ≈ 3000 × 1 s at 32 channels on the slowest machine, plus
evaluation. Measured rows replace them."""
