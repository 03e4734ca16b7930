"""Compositing methods on automatic shapes collages: fidelity and realism (Chai et al. 2021,
Tab. 1 and 3).

The collages (:func:`jaxspatial.data.collages.shapes_collages`: the background of one shapes
scene, then objects of others) are held-out scenes, pasted at the regressors' resolution.
Methods: ``pixel paste`` (the collage itself, unknown pixels grey), one row per regressor
(``G(E(collage, m))``) and, with ``rgb_fill``, one more per RGB-only regressor fed the
paper's "RGB Fill" input (:func:`jaxspatial.data.collages.fill_holes`). Measures (:data:`MEASURES`):
``masked_l1`` on the pasted pixels ([-1, 1] units, lower = more faithful) and realism in the
feature space of a critic's discriminator (:mod:`jaxspatial.metrics.critic`) against as many
real scenes: ``critic_fd`` (lower = more realistic), PRDC ``density`` and ``coverage`` (k = 5;
about 1 for real images, the paper's Tab. 3 reports both) and the mean critic logit (higher).
Reference rows: real scenes (another draw) and the generator's own samples. ``bootstrap = B``
adds each measure's standard error: its standard deviation over ``B`` resamples (with
replacement) of the method's images, the real scenes held fixed.
"""

from __future__ import annotations

import numpy as np

from jaxspatial import errors, imageio
from jaxspatial.data import collages as collages_lib
from jaxspatial.metrics import critic as critic_lib
from jaxspatial.metrics import prdc
from jaxspatial.metrics.masked_l1 import masked_l1

MEASURES = ("masked_l1", "critic_fd", "density", "coverage", "critic_logit")
PASTE = "pixel paste"
FILL = " fill"
"""Suffix of an RGB-only regressor's row fed the RGB Fill input ("RGB" -> "RGB fill")."""


def shapes_real(num: int, resolution: int, seed: int, lighting: bool = False) -> np.ndarray:
  """The first ``num`` scenes of ``ShapesSource(resolution, seed=seed, lighting=lighting)``,
  in [-1, 1]."""
  from jaxspatial.data.shapes import ShapesSource
  source = ShapesSource(resolution, seed=seed, lighting=lighting)
  return imageio.from_uint8(np.stack([source[i]["image"] for i in range(num)]))


def compare(regressors: dict, critic: critic_lib.Critic, num: int, objects: int = 2,
            collage_seed: int = 1000, bootstrap: int = 0, rgb_fill: bool = False,
            lighting: bool = False) -> tuple[list[dict], collages_lib.Collages, dict]:
  """Rows of the table, the collages, and each method's composites (row name -> images).

  ``regressors``: row name -> :class:`~jaxspatial.api.regressor.RegressorModel`. A row holds
  ``method`` and the :data:`MEASURES` (``masked_l1`` None for the reference rows) and, with
  ``bootstrap > 0``, their standard errors as ``<measure>_se``. ``critic``: e.g.
  :func:`jaxspatial.metrics.registry.open_critic` of a checkpoint or critic file.
  ``lighting``: collages and real scenes from the lit shapes world."""
  resolutions = {r.resolution for r in regressors.values()} | {critic.resolution}
  if len(resolutions) > 1:
    raise errors.UserError(f"regressors and critic disagree on the resolution: {sorted(resolutions)}")
  res = critic.resolution
  collages = collages_lib.shapes_collages(num, res, objects=objects, pool=max(64, num),
                                           seed=collage_seed, lighting=lighting)
  real_features = critic_lib.batched_features(critic, shapes_real(num, res, collage_seed + 1,
                                                                  lighting))

  def row(name: str, images: np.ndarray, l1: bool = True) -> dict:
    feats = critic_lib.batched_features(critic, images)
    l1s = np.asarray(masked_l1(images, collages.collage, collages.mask)) if l1 else None
    logits = np.asarray(critic.logits(images))

    def measures(idx: np.ndarray) -> dict:
      pr = prdc.prdc(real_features, feats[idx], nearest_k=5)
      return {"masked_l1": float(np.mean(l1s[idx])) if l1 else None,
              "critic_fd": critic_lib.frechet_from_features(feats[idx], real_features),
              "density": pr["density"], "coverage": pr["coverage"],
              "critic_logit": float(np.mean(logits[idx]))}

    out = {"method": name, **measures(np.arange(len(images)))}
    if bootstrap > 0:
      rng = np.random.default_rng(0)
      draws = [measures(rng.integers(0, len(images), len(images))) for _ in range(bootstrap)]
      out.update({f"{m}_se": float(np.std([d[m] for d in draws])) for m in MEASURES
                  if out[m] is not None})
    return out

  any_regressor = next(iter(regressors.values()))
  samples = any_regressor.generate(any_regressor.sample_z(collage_seed, num), noise="const")
  rows = [row("real scenes (reference)", shapes_real(num, res, collage_seed + 2, lighting),
              l1=False),
          row("generator samples (reference)", samples, l1=False),
          row(PASTE, collages.collage)]
  composites = {}
  filled = collages_lib.fill_holes(collages) if rgb_fill else None
  for name, reg in regressors.items():
    composites[name] = reg.inpaint(collages.collage, collages.mask)
    rows.append(row(name, composites[name]))
    if rgb_fill and not reg.config.model.use_mask:
      composites[name + FILL] = reg.inpaint(filled, collages.mask)
      rows.append(row(name + FILL, composites[name + FILL]))
  return rows, collages, composites


def format_table(rows: list[dict]) -> str:
  """Markdown table; a measure with a standard error reads ``value ± se``."""
  lines = ["| method | masked L1 | critic FD | density | coverage | critic logit |",
           "|---|---:|---:|---:|---:|---:|"]
  digits = {"masked_l1": 4, "critic_fd": 3, "density": 3, "coverage": 3, "critic_logit": 3}

  def cell(r: dict, m: str) -> str:
    if r[m] is None:
      return "–"
    se = f" ± {r[m + '_se']:.{digits[m]}f}" if m + "_se" in r else ""
    return f"{r[m]:.{digits[m]}f}{se}"

  for r in rows:
    lines.append(f"| {r['method']} | " + " | ".join(cell(r, m) for m in MEASURES) + " |")
  return "\n".join(lines)
