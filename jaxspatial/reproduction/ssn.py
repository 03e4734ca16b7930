"""``ssn-lambda``: SSN's distortion/realism trade-off over λ_D (paper Table 2 and Fig. 5).

Per seed ``s``: a StyleGAN2 source trained with seed ``s``, then for every λ_D an SSN started
from it by the paper's §3.4 transfer and trained on with that λ_D and seed ``s`` (so the
settings of one seed share their source and differ only in λ_D). Each SSN is measured by the
block-resampling distortion (docs/ssn.md) and the critic FD under the shared independent
critic (:func:`jaxspatial.reproduction.runs.critic_spec`).

Run lengths, ``small`` (32 px shapes): source = the StyleGAN2 ``demo`` preset (32 channels,
batch 8, lr 0.005), 3000 steps (24 kimg); SSN = the ``demo`` preset at the source's width
(``model.channel_max=32``), 600 steps (9.6 kimg) per λ_D ∈ {0, 10, 100, 1000}; distortion on
128 samples × 16 blocks; critic FD on 1024 generated vs 1024 real images. ``smoke``: the
``tiny`` presets initialised (0 steps), 8 samples and 16 images.
"""

from __future__ import annotations

from jaxspatial.reproduction import ledger, report, runs

NAME = "ssn-lambda"
LAMBDAS = (0.0, 10.0, 100.0, 1000.0)


Scale = runs.scale_type("num_distortion", "num_fd", overrides=("source", "ssn"))


SCALES = {
    "small": Scale("demo", (("total_steps", 3000),),
                   (("total_steps", 600), ("model.channel_max", 32),
                    ("checkpoint_every", 300), ("sample_every", 300)), 128, 1024),
    "smoke": Scale("tiny", runs.SMOKE_OVERRIDES, runs.SMOKE_OVERRIDES, 8, 16),
}

CLAIM = """\
**Claim** (Hong et al. 2020, Table 2 and Fig. 5): the distortion regulariser R_D cuts the
block-resampling distortion several-fold at a modest realism cost; λ_D trades one for the
other. Paper, FFHQ 256: λ_D = 0 → distortion 0.028, FID 12.24; λ_D = 100 → 0.0043, FID 15.24
(6.5× lower distortion). Ours: 32 px shapes scenes, distortion as docs/ssn.md defines it (the
paper gives no definition), critic FD in place of FID (docs/metrics.md)."""

PAPER = {0.0: "0.028 / FID 12.24", 100.0: "0.0043 / FID 15.24"}

COLUMNS = (report.Column("distortion", "distortion ↓", ".4f"),
           report.Column("critic_fd", "critic FD ↓", ".3f"))


def source_spec(scale: str, seed: int) -> runs.RunSpec:
  """The StyleGAN2 source of ``seed`` at ``scale`` (the regressor targets reuse seed 0's as
  their generator)."""
  s = SCALES[scale]
  return runs.RunSpec(NAME, "source-stylegan2", seed, "stylegan2.py", s.preset, s.source)


def _label(lam: float) -> str:
  return f"λ_D = {lam:g}"


SOURCE = "source-stylegan2"


def lambda_setting(lam: float) -> str:
  return f"lambda{lam:g}"


def ssn_spec(scale: str, lam: float, seed: int, source: runs.Run) -> runs.RunSpec:
  s = SCALES[scale]
  return runs.RunSpec(NAME, lambda_setting(lam), seed, "ssn.py", s.preset, s.ssn + (
      ("init_from", runs.display(source.workdir)), ("loss.distortion_weight", lam)))


def unit(session: runs.Session, setting: str, seed: int) -> dict[str, float]:
  """The source of ``seed`` (trained or reused) and, for a λ_D setting, the SSN transferred
  from it; the SSN's distortion and critic FD (the source's critic FD alone)."""
  scale = SCALES[session.scale]
  critic = session.critic()
  source = session.train(source_spec(session.scale, seed))
  if setting == SOURCE:
    return session.evaluate(source, "critic_fd", critic=critic, num=scale.num_fd)
  lam = next(lam for lam in LAMBDAS if lambda_setting(lam) == setting)
  run = session.train(ssn_spec(session.scale, lam, seed, source))
  return session.evaluate(run, "distortion,critic_fd", critic=critic, num=scale.num_fd,
                          num_distortion=scale.num_distortion)


PAIRED = tuple(report.Paired(_label(0.0), _label(lam), column, log=True)
               for column in COLUMNS for lam in LAMBDAS[1:])
"""Each λ_D against λ_D = 0 of the same seed (one source): ratios, since distortion spans
orders of magnitude."""


def page(units: list[ledger.Row], out, expected: list[str]):
  """The page from the ledger's rows."""
  rows = [report.Row(_label(lam), [(u, u.metrics) for u in units
                                   if u.setting == lambda_setting(lam)], PAPER.get(lam, ""))
          for lam in LAMBDAS]
  rows.append(report.Row("the StyleGAN2 source", [(u, u.metrics) for u in units
                                                  if u.setting == SOURCE]))
  figure = report.Figure(COLUMNS[0], COLUMNS[1], log_x=True, caption=(
      "Distortion against critic FD, one faint point per run, the mean of each λ_D with its "
      "95 % intervals (the paper's Fig. 5 Pareto plot; lower-left is better)."))
  return report.write_page(out, NAME, units, expected, title="SSN: distortion against "
                           "realism over λ_D", claim=CLAIM, columns=COLUMNS, rows=rows,
                           figure=figure, paired=PAIRED)


TARGET = runs.Target(NAME, version=1, seeds=3,
                     settings=(SOURCE, *(lambda_setting(lam) for lam in LAMBDAS)),
                     estimate_minutes={SOURCE: 20, **{lambda_setting(lam): 15
                                                      for lam in LAMBDAS}},
                     unit=unit, page=page)
"""Estimates: the source ~12 min and an SSN ~6 min on the slowest machine measured, plus
evaluations; a λ_D unit retrains its seed's source when the local cache lacks it."""
