"""``ssn-vs-stylegan2``: without the distortion regulariser, an SSN is as good a generator as a
StyleGAN2 of the same size and budget (SSN, Hong et al. 2020, Table 1).

Two settings per seed, both trained from scratch with the seed: ``stylegan2``, the StyleGAN2
``demo`` preset at 3000 steps (exactly the ``ssn-lambda`` source of that seed, so a local
cache holding that run is reused), and ``ssn``, the SSN ``demo`` preset at λ_D = 0 given the
StyleGAN2 demo's width (``model.channel_max=32``), batch (8), learning rates (0.005) and
steps (3000, 24 kimg): everything the two presets share (R1 γ = 0.05 every 16 steps, no
path-length regulariser or style mixing, EMA 2 kimg) is equal, and the SSN differs only by
its block latent (4×4 blocks of 64), per-block mapping, block encoder and spatially
modulated convolutions; its block encoder adds parameters the StyleGAN2 lacks (the
``g_params`` column says how many).

Measures: the critic FD under the shared independent critic (in place of FID), and the
perceptual path length in W (StyleGAN2's definition, ``end`` sampling, ε = 1e-4) with the
critic's unit-normalised spatial block features standing in for LPIPS (registry metric
``ppl_critic``: LPIPS's form with uniform channel weights, no VGG weights exist here), so
its values are not on LPIPS's scale; an SSN's W is its per-block grid, interpolated blockwise.

Run lengths, ``small`` (32 px shapes): 3000 steps each; critic FD on 1024 generated vs 1024
real images; PPL on 1024 pairs. ``smoke``: the ``tiny`` presets initialised (0 steps), 16
images and 8 pairs.

Budget: the StyleGAN2 demo iteration ≈ 0.23 s on the slowest 2-core class (README): 3000
steps ≈ 12 min; the SSN at the same width and batch without R_D ≈ 1.0-1.3× (docs/benchmarks.md:
SSN's G forward + backward ≈ StyleGAN2's) ≈ 12-16 min; evaluation ≈ 3 min. Priors 20 and 25
min a unit; the first rows' wall times replace them.
"""

from __future__ import annotations

from jaxspatial.reproduction import ledger, report, runs, ssn

NAME = "ssn-vs-stylegan2"
STYLEGAN2, SSN = "stylegan2", "ssn"


Scale = runs.scale_type("num_fd", "num_ppl", overrides=("ssn",))


SCALES = {
    "small": Scale("demo", (("total_steps", 3000), ("batch_size", 8),
                            ("model.channel_max", 32), ("optim.g_lr", 0.005),
                            ("optim.d_lr", 0.005), ("checkpoint_every", 1000),
                            ("sample_every", 1000)), 1024, 1024),
    "smoke": Scale("tiny", runs.SMOKE_OVERRIDES, 16, 8),
}

LABELS = {STYLEGAN2: "StyleGAN2", SSN: "SSN, λ_D = 0"}

CLAIM = """\
**Claim** (Hong et al. 2020, Table 1): the SSN architecture alone, without the distortion
regulariser (λ_D = 0), generates as well as StyleGAN2 -- comparable FID and perceptual path
length -- so that the realism cost of `ssn-lambda` comes from R_D, not from the spatial
latent. The paper's Table 1 numbers (FFHQ / LSUN at 256 px) are not quoted here: they could
not be checked against the paper in this checkout. Ours: 32 px shapes scenes, both trained
from scratch at equal width (32 channels), batch and steps, ≥ 3 seeds; critic FD in place of
FID; **PPL with the critic's spatial features standing in for LPIPS** (LPIPS's form with
uniform channel weights on the shared critic's unit-normalised block features; no VGG
weights exist here), so the PPL values are comparable between the two rows, not to any
published PPL. The claim reproduces if the paired SSN − StyleGAN2 differences' intervals
contain 0 (or favour the SSN)."""

COLUMNS = (report.Column("critic_fd", "critic FD ↓", ".3f"),
           report.Column("ppl_critic_wend", "PPL (W, end; critic features) ↓", ".1f"),
           report.Column("g_params", "G parameters", ".0f"))

PAIRED = (report.Paired(LABELS[STYLEGAN2], LABELS[SSN], COLUMNS[0]),
          report.Paired(LABELS[STYLEGAN2], LABELS[SSN], COLUMNS[1], log=True))
"""SSN against the StyleGAN2 of the same seed: critic FD as a difference, PPL as a ratio."""


def run_spec(scale: str, setting: str, seed: int) -> runs.RunSpec:
  """The run of ``setting`` and ``seed``: the ``ssn-lambda`` source for StyleGAN2 (the same
  spec, so the same run folder), the λ_D = 0 SSN of this target otherwise."""
  if setting == STYLEGAN2:
    return ssn.source_spec(scale, seed)
  s = SCALES[scale]
  return runs.RunSpec(NAME, SSN, seed, "ssn.py", s.preset,
                      s.ssn + (("loss.distortion_weight", 0.0),))


def parameter_count(workdir) -> float:
  """The number of the generator's trainable parameters (its ``params`` collection)."""
  import jax
  import jaxspatial as js
  model = js.load(workdir)
  return float(sum(x.size for x in jax.tree.leaves(model.g_vars.get("params", model.g_vars))))


def unit(session: runs.Session, setting: str, seed: int) -> dict[str, float]:
  """Trains (or reuses) the run; its critic FD, critic-feature PPL and parameter count."""
  scale = SCALES[session.scale]
  critic = session.critic()
  run = session.train(run_spec(session.scale, setting, seed))
  fd = session.evaluate(run, "critic_fd", critic=critic, num=scale.num_fd)
  path = session.evaluate(run, "ppl_critic", critic=critic, num=scale.num_ppl)
  return {**fd, **path, "g_params": parameter_count(run.workdir),
          "eval_seconds": fd["eval_seconds"] + path["eval_seconds"]}


def page(units: list[ledger.Row], out, expected: list[str]):
  """The page from the ledger's rows."""
  rows = [report.Row(label, [(u, u.metrics) for u in units if u.setting == setting])
          for setting, label in LABELS.items()]
  figure = report.Figure(COLUMNS[0], COLUMNS[1], caption=(
      "Critic FD against the critic-feature PPL, one faint point per run, each "
      "architecture's mean with its 95 % intervals (lower left is better)."))
  s = SCALES["small"]
  notes = (f"Both rows: {dict(s.ssn)['total_steps']} steps at batch 8 from scratch, 32 "
           f"channels; critic FD on {s.num_fd} generated vs {s.num_fd} real scenes; PPL on "
           f"{s.num_ppl} pairs, W space, path endpoints (t = 0), ε = 1e-4, the mean between "
           "the 1st and 99th percentiles, the distance d(x, y) = Σ_r mean_hw Σ_c (u_x − "
           "u_y)² over the critic's unit-normalised block features u at 16, 8 and 4 px "
           "(`jaxspatial.nets.critic.feature_distance`). The StyleGAN2 row is the "
           "`ssn-lambda` source run of the same seed (same spec).")
  return report.write_page(out, NAME, units, expected, title="SSN at λ_D = 0 against "
                           "StyleGAN2 of equal size and budget (Table 1)", claim=CLAIM,
                           columns=COLUMNS, rows=rows, figure=figure, notes=notes,
                           paired=PAIRED)


TARGET = runs.Target(NAME, version=1, settings=(STYLEGAN2, SSN), seeds=3,
                     estimate_minutes={STYLEGAN2: 20, SSN: 25}, unit=unit, page=page)
"""Estimates: the module docstring's budget."""
