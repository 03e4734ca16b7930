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

import dataclasses

from jaxspatial import cli
from jaxspatial.reproduction import report, runs

NAME = "ssn-lambda"
LAMBDAS = (0.0, 10.0, 100.0, 1000.0)


@dataclasses.dataclass(frozen=True)
class Scale:
  preset: str
  source: tuple[tuple[str, object], ...]
  ssn: tuple[tuple[str, object], ...]
  num_distortion: int
  num_fd: int


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


def reproduce(session: runs.Session, out: str) -> str:
  """Trains what is missing, evaluates every SSN run and writes ``out/ssn-lambda.md``."""
  scale = SCALES[session.scale]
  critic = session.train(runs.critic_spec(session.scale))
  rows = {lam: report.Row(_label(lam), [], PAPER.get(lam, "")) for lam in LAMBDAS}
  source_row = report.Row("the StyleGAN2 source", [])
  plan = [(seed, lam) for seed in session.seeds for lam in LAMBDAS]
  sources = {}
  for seed, lam in cli.progress(plan, desc=NAME, unit="run"):
    if seed not in sources:
      sources[seed] = session.train(source_spec(session.scale, seed))
      source_row.runs.append((sources[seed], session.evaluate(
          sources[seed], "critic_fd", critic=critic.workdir, num=scale.num_fd)))
    spec = runs.RunSpec(NAME, f"lambda{lam:g}", seed, "ssn.py", scale.preset, scale.ssn + (
        ("init_from", str(sources[seed].workdir)), ("loss.distortion_weight", lam)))
    run = session.train(spec)
    results = session.evaluate(run, "distortion,critic_fd", critic=critic.workdir,
                               num=scale.num_fd, num_distortion=scale.num_distortion)
    rows[lam].runs.append((run, results))
  figure = report.Figure(COLUMNS[0], COLUMNS[1], log_x=True, caption=(
      "Distortion against critic FD, one faint point per run, the mean of each λ_D with its "
      "95 % intervals (the paper's Fig. 5 Pareto plot; lower-left is better)."))
  return str(report.write_page(out, NAME, session, title="SSN: distortion against realism "
                               "over λ_D", claim=CLAIM, columns=COLUMNS,
                               rows=[*rows.values(), source_row], figure=figure))


def _label(lam: float) -> str:
  return f"λ_D = {lam:g}"
