"""``ada-limited-data``: adaptive discriminator augmentation on a small dataset (Karras et al.
2020, "Training Generative Adversarial Networks with Limited Data", Fig. 1 and Fig. 5).

Four settings of equal size and budget, each the StyleGAN2 ``demo`` trained from scratch per
seed on the first N shapes scenes only (``data.length=N``: the sampler shuffles and repeats
those N), with and without ADA (``augment.kind=ada``, the official target 0.6, interval 4 and
``bgc`` pipe, at :data:`SPEED_KIMG`, a speed scaled to the run's length). Measured per run:

* **critic FD against the full distribution** (``--data length=1000000``: real scenes the
  small runs never saw), under the shared critic -- the paper's FID on the full dataset;
* **the overfitting heuristic r_t** = E[sign(D(real))] over training (the official
  ``Loss/signs/real``, logged as ``augment/r_t`` by every run, augmented or not), its mean over
  the last tenth of training and the curve at eight points;
* **p** at the end of training (0 without ADA).

Run lengths, ``small``: 6000 steps (48 kimg, batch 8: 500 scenes are seen ~100 times, 2000
scenes ~25 times); critic FD 1024 vs 1024. ``smoke``: the ``tiny`` preset initialised.
"""

from __future__ import annotations

import json
import math

import numpy as np

from jaxspatial.reproduction import ledger, report, runs

NAME = "ada-limited-data"

SETTINGS = (("n500-none", 500, "none"), ("n500-ada", 500, "ada"),
            ("n2000-none", 2000, "none"), ("n2000-ada", 2000, "ada"))
"""(setting, training scenes, augment.kind)."""

LABELS = {"n500-none": "500 scenes, no augmentation", "n500-ada": "500 scenes, ADA",
          "n2000-none": "2000 scenes, no augmentation", "n2000-ada": "2000 scenes, ADA"}

SCALES = {"small": ("demo", (("total_steps", 6000),), 1024),
          "smoke": ("tiny", runs.SMOKE_OVERRIDES, 16)}

CURVE_POINTS = 8

SPEED_KIMG = 5.0
"""ADA's ``speed_kimg`` in these runs: p may move from 0 to 1 in 5k images, a tenth of the
small scale's 48 kimg. The official 500 kimg is a small part of runs of tens of Mimg; here it
would cap p at 6000 / 4 intervals · 8 · 4 / 500k = 0.096 by the end, so ADA could not react
within the run (the same rule, ``ada_adjust``, at a step of 8 · 4 / 5000 = 0.0064)."""

CLAIM = """\
**Claim** (Karras et al. 2020, Fig. 1, 5 and 7): with little data the discriminator
overfits -- the heuristic r_t = E[sign(D(real))] climbs toward 1 and FID on the full dataset
worsens as training goes on -- and ADA, raising the augmentation probability p while r_t
exceeds 0.6, holds r_t near 0.6 and improves FID, "often matching StyleGAN2 results with an
order of magnitude fewer images" (abstract; CIFAR-10 FID 5.59 → 2.42). Ours: 32 px shapes scenes, 500 and 2000 training scenes, the StyleGAN2
demo, critic FD against unseen scenes in place of FID."""

COLUMNS = (report.Column("critic_fd", "critic FD vs unseen scenes ↓", ".3f"),
           report.Column("r_t_final", "r_t, last tenth of training", ".3f"),
           report.Column("p_final", "p at the end", ".3f"))

PAIRED = tuple(report.Paired(LABELS[f"n{n}-none"], LABELS[f"n{n}-ada"], column)
               for n in (500, 2000) for column in COLUMNS[:2])
"""ADA − no augmentation at the same dataset size and seed."""


def run_spec(scale: str, setting: str, seed: int) -> runs.RunSpec:
  preset, train, _ = SCALES[scale]
  _, length, kind = next(s for s in SETTINGS if s[0] == setting)
  speed = (("augment.speed_kimg", SPEED_KIMG),) if kind == "ada" else ()
  return runs.RunSpec(NAME, setting, seed, "stylegan2.py", preset,
                      train + (("data.length", length), ("augment.kind", kind)) + speed)


def training_curve(workdir) -> dict[str, float]:
  """``r_t_final`` (mean ``augment/r_t`` over the last tenth of the logged steps),
  ``p_final``, and the curves over :data:`CURVE_POINTS` equal windows of the logged steps:
  ``r_t@k`` the window's mean r_t (each logged value is one 4-step ADA interval's, too noisy
  alone) and ``p@k`` p at its last step k, from the run's ``metrics.jsonl`` (nan when the run
  logged no step; p is 0 where a run without augmentation logs none)."""
  path = workdir / "metrics.jsonl"
  lines = [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []
  lines = [m for m in lines if "augment/r_t" in m]
  if not lines:
    return {"r_t_final": math.nan, "p_final": math.nan}
  r_t = np.array([m["augment/r_t"] for m in lines])
  out = {"r_t_final": float(r_t[-max(1, len(r_t) // 10):].mean()),
         "p_final": float(lines[-1].get("augment/p", 0.0))}
  ends = np.linspace(0, len(lines), CURVE_POINTS + 1).round().astype(int)
  for start, end in zip(ends[:-1], ends[1:]):
    if end > start:
      out[f"r_t@{lines[end - 1]['step']}"] = float(r_t[start:end].mean())
      out[f"p@{lines[end - 1]['step']}"] = float(lines[end - 1].get("augment/p", 0.0))
  return out


def unit(session: runs.Session, setting: str, seed: int) -> dict[str, float]:
  """Trains (or reuses) the run; critic FD against unseen scenes, r_t and p over training."""
  _, _, num_fd = SCALES[session.scale]
  critic = session.critic()
  run = session.train(run_spec(session.scale, setting, seed))
  metrics = session.evaluate(run, "critic_fd", critic=critic, num=num_fd,
                             data="length=1000000")
  return {**metrics, **training_curve(run.workdir)}


def page(units: list[ledger.Row], out, expected: list[str]):
  """The page from the ledger's rows."""
  rows = [report.Row(LABELS[s], [(u, u.metrics) for u in units if u.setting == s])
          for s, _, _ in SETTINGS]
  notes = ("r_t is the mean sign of D's real logits over each ADA interval (4 steps), logged "
           "every 25 steps; the rows also hold its curve (`r_t@step`, `p@step`). Without "
           "augmentation p stays 0 and r_t shows how far D overfits the small set. ADA moves p at "
           f"`augment.speed_kimg={SPEED_KIMG:g}` (0 to 1 in a tenth of the 48-kimg run; the "
           "official 500 would cap p at 0.096 here).")
  figure = report.Figure(COLUMNS[1], COLUMNS[0], caption=(
      "Critic FD against unseen scenes against r_t at the end of training, one faint point "
      "per run, each setting's mean with its 95 % intervals (lower left is better; the "
      "paper's ADA target is r_t = 0.6)."))
  curves = (report.Curves("r_t@", "r_t = E[sign(D(real))]", "r_t", reference=0.6, caption=(
                "The overfitting heuristic r_t over training (as stylegan2-ada's Fig. 5): one "
                "faint line per run, each setting's mean across seeds bold, ADA's target 0.6 "
                "dashed; each point the mean over an eighth of training.")),
            report.Curves("p@", "augmentation probability p", "p", caption=(
                "ADA's augmentation probability p over training (0 throughout without "
                "augmentation).")))
  return report.write_page(out, NAME, units, expected, title="ADA on limited data",
                           claim=CLAIM, columns=COLUMNS, rows=rows, figure=figure,
                           notes=notes, paired=PAIRED, curves=curves)


TARGET = runs.Target(NAME, version=1, settings=tuple(s for s, _, _ in SETTINGS), seeds=3,
                     estimate_minutes={"n500-none": 25, "n500-ada": 40, "n2000-none": 25,
                                       "n2000-ada": 40},
                     unit=unit, page=page)
"""Estimates, the slowest 2-core machine measured: the demo iteration ≈ 0.23 s there, ×1.6
with ADA on (measured on this CPU, interleaved); 6000 steps ≈ 23 / 37 min, plus evaluation."""
