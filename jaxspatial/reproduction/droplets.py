"""``ssn-droplets``: SPADE and AdaIN conditioning make droplet artifacts, the spatially
modulated convolution does not (SSN, Hong et al. 2020, §3.1, appendix A and Fig. 4).

Three settings of equal size and training budget, each the SSN ``demo`` trained from scratch
per seed, differing only in ``model.spatial_conditioning``: ``modconv`` (the paper's layer,
normalised by *expected* statistics), ``spade`` (appendix eq. 3: a plain conv normalised by
the actual statistics over batch and space, then the spatial style's scale and bias) and
``adain`` (eq. 6 with spatial styles: per-sample instance statistics). Each run is measured
by the critic FD under the shared independent critic and by the droplet measure below, and
draws the panel of the page's Fig. 4 analogue.

Droplet measure
---------------
StyleGAN2 (Karras et al. 2020, §2, Fig. 1) shows droplets in the *mean over channels* of an
intermediate activation: a small blob far stronger than the rest of the map, which the
generator grows because a normalisation by actual statistics lets one strong spike set the
scale of everything else (and hide information from it). So, per sample and per resolution
``R`` ≥ 8 of the synthesis network (the activations after each resolution block, noise at the
model's stored constants as in generation), with ``m`` the channel mean and ``d = m −
median(m)`` (the map's typical level removed, so a uniform bias is not energy):

* ``share_R``: the share of ``Σ d²`` held by the top 0.5 % of positions (at least one):
  ``k / R²`` for a flat map (8 px: 1/64, 16 px: 2/256, 32 px: 6/1024), a few times that for
  object-shaped content (a shapes object covers ≳ 1 % of the image), → 1 for a droplet,
  which is a few positions carrying the map;
* ``ratio_R``: ``max |d| / median |d|``, the ratio of peak to typical activation the issue
  suggests (≈ 5 for Gaussian noise on 32×32 positions, tens for a droplet).

Both are averaged over the samples (a droplet in a few samples raises the mean). 0.5 %: the
smallest top set that still isolates a droplet-sized blob at 32 px (6 positions), while an
object's outline or a horizon spreads over far more positions. Samples are generated in
batches of 16, the training batch (SPADE's statistics span the batch it is run on).

Run lengths, ``small`` (32 px shapes, the SSN ``demo`` preset at the StyleGAN2 demo's width,
``model.channel_max=32``, batch 16, λ_D = 100 as the preset): 2500 steps (40 kimg) per run;
droplets on 256 samples; critic FD on 1024 generated vs 1024 real images; the figure draws 4
samples. ``smoke``: the ``tiny`` preset initialised (0 steps), 16 samples and 16 images.

Budget: on the slowest 2-core machine the brief names, a 32 px StyleGAN2 ``demo`` iteration
(32 channels, batch 8) takes ≈ 0.23 s. An SSN ``demo`` iteration at the same width costs
≈ 2× for its batch of 16 (throughput does not grow with batch on these CPUs,
docs/benchmarks.md), SSN's G forward + backward ≈ 1.0× StyleGAN2's (docs/benchmarks.md, SSN),
and ≈ 1.3× for R_D's second generator pass and the lazy R1: ≈ 0.6-0.7 s, so 2500 steps ≈
25-30 min of training, plus ≈ 5 min of evaluation: ≈ 35 min a unit, under 45 min with a 25 %
margin for a slower variant. Not measured here (the CPUs were reserved for the campaign): the
first rows' wall times replace the estimate (:meth:`~.campaign.Campaign.estimate`).

Each unit writes its panel to ``docs/reproduction/ssn-droplets/<unit>.png`` (commit it with
the row); the page links the panels by unit name, so ``--page-only`` rebuilds it from rows.
"""

from __future__ import annotations

import math
import pathlib

import numpy as np

from jaxspatial.reproduction import ledger, report, runs

NAME = "ssn-droplets"
TOP_FRACTION = 0.005
"""The top share of positions whose energy ``share_R`` measures."""
MIN_RESOLUTION = 8
"""The coarsest feature map measured: at 4 px the top 0.5 % would be 1 of 16 positions."""
FIGURE_SAMPLES = 4
"""Samples (rows) in a unit's panel."""
FIGURE_TILE = 64
"""Side of every tile of a panel in pixels: a 32 px image twice, an 8 px map 8 times."""
BATCH = 16
"""Samples per generator call: the ``demo`` training batch, which SPADE's statistics span."""


Scale = runs.scale_type("num_droplets", "num_fd")


SCALES = {
    "small": Scale("demo", (("total_steps", 2500), ("model.channel_max", 32)), 256, 1024),
    "smoke": Scale("tiny", runs.SMOKE_OVERRIDES, 16, 16),
}

SETTINGS = (("modconv", "spatially modulated conv (SSN)"),
            ("spade", "SPADE (eq. 3)"),
            ("adain", "AdaIN, spatial styles (eq. 6)"))
"""(``model.spatial_conditioning``, table label)."""

CLAIM = """\
**Claim** (Hong et al. 2020, §3.1, appendix A and Fig. 4): SPADE's spatial conditioning, like
StyleGAN's AdaIN, normalises by the actual statistics of the activations and so produces
droplet ("bubble") artifacts; the spatially modulated convolution, which normalises by
expected statistics, removes them. The paper shows one pair of images (Fig. 4) and no
number. Ours: 32 px shapes scenes, the three conditionings in the same SSN trained equally
from scratch, droplets measured on the channel-mean feature maps as StyleGAN2's Fig. 1 shows
them (definition below), critic FD in place of FID. The claim reproduces if SPADE and AdaIN
rows have higher peak shares than the modulated conv, paired by seed."""


def run_spec(scale: str, setting: str, seed: int) -> runs.RunSpec:
  """The training run of ``setting`` (a conditioning) and ``seed`` at ``scale``."""
  s = SCALES[scale]
  return runs.RunSpec(NAME, setting, seed, "ssn.py", s.preset,
                      s.train + (("model.spatial_conditioning", setting),))


def peak_energy_share(maps: np.ndarray, fraction: float = TOP_FRACTION) -> np.ndarray:
  """``(N, R, R)`` channel-mean maps -> ``(N,)``: the share of ``Σ (m − median m)²`` in the
  top ``max(1, ⌈fraction · R²⌉)`` positions (nan for a constant map)."""
  n = maps.shape[0]
  energy = np.square(maps - np.median(maps, axis=(1, 2), keepdims=True)).reshape(n, -1)
  k = max(1, math.ceil(fraction * energy.shape[1]))
  top = np.sort(energy, axis=1)[:, -k:].sum(axis=1)
  total = energy.sum(axis=1)
  return np.where(total > 0, top / np.where(total > 0, total, 1.0), np.nan)


def peak_ratio(maps: np.ndarray) -> np.ndarray:
  """``(N, R, R)`` -> ``(N,)``: ``max |m − median m| / median |m − median m|`` (nan when the
  median deviation is 0)."""
  n = maps.shape[0]
  dev = np.abs(maps - np.median(maps, axis=(1, 2), keepdims=True)).reshape(n, -1)
  typical = np.median(dev, axis=1)
  return np.where(typical > 0, dev.max(axis=1) / np.where(typical > 0, typical, 1.0), np.nan)


class FeatureMaps:
  """``z -> (images, maps)`` for a loaded generator model: images ``(N, H, W, 3)`` in
  [-1, 1] and the channel-mean activation maps ``{R: (N, R, R)}`` after every resolution
  block of ``R`` ≥ :data:`MIN_RESOLUTION`, generated in batches of :data:`BATCH` with the
  stored constant noise, truncation 1 (one compiled program for the measure and the panel)."""

  def __init__(self, model):
    g = model.generator
    self.model = model
    self._fn = model.jit(lambda v, z: g.apply(v, z, noise_mode="const", return_features=True))

  def __call__(self, z: np.ndarray) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    import jax
    images, maps = [], {}
    for start in range(0, len(z), BATCH):
      img, feats = jax.device_get(self._fn(self.model.g_vars, z[start:start + BATCH]))
      images.append(np.asarray(img))
      for f in feats:
        if f.shape[1] >= MIN_RESOLUTION:
          maps.setdefault(f.shape[1], []).append(np.asarray(f, np.float32).mean(axis=-1))
    return np.concatenate(images), {r: np.concatenate(m) for r, m in maps.items()}


def droplet_measures(features: FeatureMaps, num: int, seed: int = 0) -> dict[str, float]:
  """``share_R`` and ``ratio_R`` (module docstring) averaged over ``num`` samples of seed
  ``seed``."""
  _, maps = features(features.model.sample_z(seed, num))
  out = {}
  for r, m in sorted(maps.items()):
    out[f"share_{r}"] = float(np.nanmean(peak_energy_share(m)))
    out[f"ratio_{r}"] = float(np.nanmean(peak_ratio(m)))
  return out


def panel(features: FeatureMaps, path: pathlib.Path, seed: int = 0) -> pathlib.Path:
  """Fig. 4's panel for one run: a row per sample, the image on the left and beside it the
  channel-mean map of each resolution (coarse to fine), each map scaled to its own min..max
  (StyleGAN2's Fig. 1 display: a droplet is a bright spot on a dark map), every tile
  :data:`FIGURE_TILE` px (nearest). The samples are the first of the measured ones, generated
  in the same batch (SPADE's statistics span it)."""
  from PIL import Image
  from jaxspatial import imageio
  images, maps = features(features.model.sample_z(seed, BATCH))
  images, maps = images[:FIGURE_SAMPLES], {r: m[:FIGURE_SAMPLES] for r, m in maps.items()}
  upscale = lambda a: a.repeat(FIGURE_TILE // a.shape[1], 1).repeat(FIGURE_TILE // a.shape[2], 2)
  tiles = [upscale(imageio.to_uint8(images))]
  for _, m in sorted(maps.items()):
    lo, hi = m.min(axis=(1, 2), keepdims=True), m.max(axis=(1, 2), keepdims=True)
    grey = np.round(255 * (m - lo) / np.maximum(hi - lo, 1e-12)).astype(np.uint8)
    tiles.append(upscale(np.repeat(grey[..., None], 3, axis=-1)))
  mosaic = imageio.grid(np.stack(tiles, 1).reshape(-1, FIGURE_TILE, FIGURE_TILE, 3),
                        cols=len(tiles))
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(path.name + ".tmp.png")
  Image.fromarray(mosaic).save(tmp)
  tmp.replace(path)
  return path


def panel_path(out: pathlib.Path, setting: str, seed: int) -> pathlib.Path:
  return pathlib.Path(out) / NAME / f"{ledger.unit_name(setting, seed)}.png"


def unit(session: runs.Session, setting: str, seed: int) -> dict[str, float]:
  """Trains (or reuses) the run of ``setting`` and ``seed``; its critic FD and droplet
  measures, and its panel of the figure."""
  import jaxspatial as js
  scale = SCALES[session.scale]
  critic = session.critic()
  run = session.train(run_spec(session.scale, setting, seed))
  fd = session.evaluate(run, "critic_fd", critic=critic, num=scale.num_fd)
  features = FeatureMaps(js.load(run.workdir))
  drops = session.measure(run, f"{NAME} droplets num={scale.num_droplets} seed=0",
                          lambda: droplet_measures(features, scale.num_droplets))
  panel(features, panel_path(session.out, setting, seed))
  return {**fd, **drops, "eval_seconds": fd["eval_seconds"] + drops["eval_seconds"]}


FD = report.Column("critic_fd", "critic FD ↓", ".3f")


def _resolutions(units: list[ledger.Row]) -> list[int]:
  """The feature-map resolutions the rows measured (8, 16, 32 at ``small``)."""
  return sorted({int(k.split("_")[1]) for u in units for k in u.metrics
                 if k.startswith("share_")})


def columns(units: list[ledger.Row]) -> tuple[report.Column, ...]:
  res = _resolutions(units)
  return (FD,
          *(report.Column(f"share_{r}", f"top-0.5 % energy share, {r} px", ".3f") for r in res),
          *(report.Column(f"ratio_{r}", f"max / median, {r} px", ".1f") for r in res))


def paired(units: list[ledger.Row]) -> tuple[report.Paired, ...]:
  """SPADE and AdaIN against the modulated conv of the same seed: the droplet measures at
  the finest resolution as ratios, critic FD as a difference."""
  res = _resolutions(units)
  base = SETTINGS[0][1]
  out = []
  for _, label in SETTINGS[1:]:
    out += [report.Paired(base, label, c, log=True) for c in columns(units)
            if res and c.key in (f"share_{res[-1]}", f"ratio_{res[-1]}")]
    out.append(report.Paired(base, label, FD))
  return tuple(out)


def _panels(units: list[ledger.Row]) -> str:
  """Fig. 4's analogue: every unit's panel, a row per setting and a column per seed."""
  seeds = sorted({u.seed for u in units})
  if not seeds:
    return ""
  have = {(u.setting, u.seed) for u in units}
  lines = ["## Figure: images and channel-mean feature maps (the paper's Fig. 4)", "",
           "Each panel: four samples (rows) of one run, the image on the left and beside it "
           "the mean over channels of the activations after each resolution block, coarse to "
           "fine, each map scaled to its own range (StyleGAN2's Fig. 1 display: a droplet is "
           "a bright spot on a dark map). Samples of seed 0 of the generator, stored noise.",
           "", "| setting | " + " | ".join(f"training seed {s}" for s in seeds) + " |",
           "|---|" + "---|" * len(seeds)]
  for name, label in SETTINGS:
    cells = [f"![{label}, seed {s}]({NAME}/{ledger.unit_name(name, s)}.png)"
             if (name, s) in have else "–" for s in seeds]
    lines.append(f"| {label} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def page(units: list[ledger.Row], out, expected: list[str]):
  """The page from the ledger's rows (the panels are linked by unit name)."""
  rows = [report.Row(label, [(u, u.metrics) for u in units if u.setting == name])
          for name, label in SETTINGS]
  cols = columns(units)
  res = _resolutions(units)
  figure = None
  if res:
    figure = report.Figure(FD, next(c for c in cols if c.key == f"share_{res[-1]}"), caption=(
        f"Top-0.5 % energy share of the {res[-1]} px channel-mean feature map against critic "
        "FD, one faint point per run, each setting's mean with its 95 % intervals (lower "
        "left is better: no droplets, realistic)."))
  notes = ("Droplet measure (module docstring of `jaxspatial/reproduction/droplets.py`): per "
           "sample and resolution R, m = the mean over channels of the activations after the "
           "R px block and d = m − median(m); the top-0.5 % energy share is the share of Σ d² "
           "held by the largest ⌈0.005 R²⌉ positions (flat map: 1/64, 2/256, 6/1024 at 8, "
           "16, 32 px; a droplet: → 1), max / median is max |d| / median |d|; both averaged "
           "over the samples of a run.\n\n" + _panels(units))
  return report.write_page(out, NAME, units, expected, title="SSN: droplet artifacts of SPADE "
                           "and AdaIN against spatially modulated convolutions", claim=CLAIM,
                           columns=cols, rows=rows, figure=figure, notes=notes,
                           paired=paired(units))


TARGET = runs.Target(NAME, version=1, settings=tuple(name for name, _ in SETTINGS), seeds=3,
                     estimate_minutes={name: 35 for name, _ in SETTINGS}, unit=unit, page=page)
"""Estimates: the module docstring's budget (≈ 30 min of training, ≈ 5 of evaluation)."""
