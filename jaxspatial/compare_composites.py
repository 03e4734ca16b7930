r"""Compare compositing methods on automatic shapes collages: masked L1 and realism.

    python -m jaxspatial.compare_composites --critic runs/demo \
        --regressor RGBM=runs/reg-rgbm --regressor RGB=runs/reg-rgb --num 512 \
        --out docs/images/regressor_composites.png

The collages (``jaxspatial.data.collages.shapes_collages``: the background of one shapes
scene, then objects of others) are held-out scenes (``--collage-seed``), pasted at the
regressors' resolution. Methods: ``pixel paste`` (the collage itself, unknown pixels grey) and
one row per ``--regressor NAME=DIR`` (``G(E(collage, m))``). Columns (Chai et al. 2021, Tab. 1
measures both): ``masked_l1`` on the pasted pixels ([-1, 1] units, lower = more faithful) and
realism in the feature space of ``--critic``'s discriminator (:mod:`jaxspatial.metrics.critic`)
against ``--num`` real scenes: ``critic_fd`` (lower = more realistic), PRDC ``density``
(k = 5; about 1 for real images, lower = less realistic) and the mean critic logit (higher).
Reference rows: real scenes (another draw) and the generator's own samples. ``--bootstrap B``
adds each measure's standard error: its standard deviation over ``B`` resamples (with
replacement) of the method's images, the real scenes held fixed.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

from jaxspatial import cli, imageio
from jaxspatial.data import collages as collages_lib
from jaxspatial.metrics import critic as critic_lib
from jaxspatial.metrics import prdc
from jaxspatial.metrics.masked_l1 import masked_l1


def parse_args(argv=None) -> argparse.Namespace:
  p = cli.ArgumentParser.for_command("compare_composites", __doc__)
  p.add_argument("--regressor", action="append", required=True, metavar="NAME=DIR",
                 help="a trained regressor checkpoint and its name in the table (repeat)")
  p.add_argument("--critic", required=True,
                 help="a trained StyleGAN2 checkpoint whose discriminator judges realism")
  p.add_argument("--num", type=int, default=512, help="collages (and real scenes for the FD)")
  p.add_argument("--objects", type=int, default=2, help="object layers per collage")
  p.add_argument("--collage-seed", type=int, default=1000,
                 help="shapes scenes for collages (a seed the training data does not use)")
  p.add_argument("--bootstrap", type=int, default=0, metavar="B",
                 help="resamples for standard errors (0 = none)")
  p.add_argument("--show", type=int, default=8, help="collages in the picture")
  p.add_argument("--out", help="picture: collages, then each regressor's composites (PNG)")
  p.add_argument("--json", help="write the table as JSON here")
  return p.parse_args(argv)


def _named(spec: str) -> tuple[str, str]:
  name, sep, path = spec.partition("=")
  if not sep or not name or not path:
    raise cli.UserError(f"--regressor {spec!r}: expected NAME=DIR, e.g. RGBM=runs/reg-rgbm")
  return name, path


def _shapes_real(num: int, resolution: int, seed: int) -> np.ndarray:
  from jaxspatial.data.shapes import ShapesSource
  source = ShapesSource(resolution, seed=seed)
  return imageio.from_uint8(np.stack([source[i]["image"] for i in range(num)]))


MEASURES = ("masked_l1", "critic_fd", "density", "critic_logit")


def compare(regressors: dict, critic_model, num: int, objects: int = 2,
            collage_seed: int = 1000, bootstrap: int = 0
            ) -> tuple[list[dict], collages_lib.Collages, dict]:
  """Rows of the table, the collages, and each regressor's composites (name -> images).

  A row holds the ``MEASURES`` (``masked_l1`` None for the reference rows) and, with
  ``bootstrap > 0``, their standard errors as ``<measure>_se``."""
  critic = critic_lib.critic_from_model(critic_model)
  resolutions = {r.resolution for r in regressors.values()} | {critic.resolution}
  if len(resolutions) > 1:
    raise cli.UserError(f"regressors and critic disagree on the resolution: {sorted(resolutions)}")
  res = critic.resolution
  collages = collages_lib.shapes_collages(num, res, objects=objects, pool=max(64, num),
                                           seed=collage_seed)
  real = _shapes_real(num, res, collage_seed + 1)
  held_out = _shapes_real(num, res, collage_seed + 2)

  real_features = critic_lib.batched_features(critic, real)

  def row(name: str, images: np.ndarray, l1: bool = True) -> dict:
    feats = critic_lib.batched_features(critic, images)
    l1s = np.asarray(masked_l1(images, collages.collage, collages.mask)) if l1 else None
    logits = np.asarray(critic.logits(images))

    def measures(idx: np.ndarray) -> dict:
      return {"masked_l1": float(np.mean(l1s[idx])) if l1 else None,
              "critic_fd": critic_lib.frechet_from_features(feats[idx], real_features),
              "density": prdc.prdc(real_features, feats[idx], nearest_k=5)["density"],
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
  rows = [row("real scenes (reference)", held_out, l1=False),
          row("generator samples (reference)", samples, l1=False),
          row("pixel paste", collages.collage)]
  composites = {}
  for name, reg in regressors.items():
    composites[name] = reg.inpaint(collages.collage, collages.mask)
    rows.append(row(name, composites[name]))
  return rows, collages, composites


def format_table(rows: list[dict]) -> str:
  """Markdown table; a measure with a standard error reads ``value ± se``."""
  lines = ["| method | masked L1 | critic FD | density | critic logit |",
           "|---|---:|---:|---:|---:|"]
  digits = {"masked_l1": 4, "critic_fd": 3, "density": 3, "critic_logit": 3}

  def cell(r: dict, m: str) -> str:
    if r[m] is None:
      return "–"
    se = f" ± {r[m + '_se']:.{digits[m]}f}" if m + "_se" in r else ""
    return f"{r[m]:.{digits[m]}f}{se}"

  for r in rows:
    lines.append(f"| {r['method']} | " + " | ".join(cell(r, m) for m in MEASURES) + " |")
  return "\n".join(lines)


def main(argv=None) -> None:
  args = parse_args(argv)
  if args.num < 2:
    raise cli.UserError("--num must be at least 2 (a Fréchet distance needs a covariance)")
  if args.bootstrap < 0:
    raise cli.UserError("--bootstrap must be 0 (none) or a number of resamples")
  import jaxspatial as js
  from jaxspatial.api.regressor import load_regressor
  start = time.time()
  regressors = {name: load_regressor(path) for name, path in map(_named, args.regressor)}
  rows, collages, composites = compare(regressors, js.load(args.critic), args.num,
                                       args.objects, args.collage_seed, args.bootstrap)
  print(format_table(rows))
  print(f"({args.num} collages, {time.time() - start:.0f} s)")
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
  if args.out:
    k = min(args.show, args.num)
    picture = np.concatenate([collages.collage[:k]] + [c[:k] for c in composites.values()])
    imageio.save_grid(args.out, picture, cols=k, upscale_to=96)
    print(f"wrote {args.out}: rows = collage, " + ", ".join(composites))


if __name__ == "__main__":
  cli.run(main)
