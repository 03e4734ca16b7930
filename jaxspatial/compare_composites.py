r"""Compare compositing methods on automatic shapes collages: masked L1 and realism.

    python -m jaxspatial.compare_composites --critic runs/demo \
        --regressor RGBM=runs/reg-rgbm --regressor RGB=runs/reg-rgb --num 512 --rgb-fill \
        --out docs/images/regressor_composites.png

Collages, methods and measures (masked L1, critic FD, density, coverage, critic logit, with
``--bootstrap B`` standard errors): :mod:`jaxspatial.metrics.composites`. ``--rgb-fill`` adds
the paper's RGB Fill row for every RGB-only regressor (``--config.model.use_mask=False``).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import numpy as np

from jaxspatial import cli, errors, imageio
from jaxspatial.metrics import composites


def parse_args(argv=None) -> argparse.Namespace:
  p = cli.ArgumentParser.for_command("compare_composites", __doc__)
  p.add_argument("--regressor", action="append", required=True, metavar="NAME=DIR",
                 help="a trained regressor checkpoint and its name in the table (repeat)")
  p.add_argument("--critic", required=True,
                 help="a trained StyleGAN2 checkpoint whose discriminator judges realism, or a "
                      "critic file (.npz)")
  p.add_argument("--num", type=int, default=512, help="collages (and real scenes for the FD)")
  p.add_argument("--objects", type=int, default=2, help="object layers per collage")
  p.add_argument("--collage-seed", type=int, default=1000,
                 help="shapes scenes for collages (a seed the training data does not use)")
  p.add_argument("--bootstrap", type=int, default=0, metavar="B",
                 help="resamples for standard errors (0 = none)")
  p.add_argument("--rgb-fill", action="store_true",
                 help="also feed every RGB-only regressor the paper's RGB Fill input (holes "
                      "filled with the background layer's mean colour): a row NAME fill")
  p.add_argument("--lighting", action="store_true",
                 help="collages and real scenes from the lit shapes world (data.lighting)")
  p.add_argument("--show", type=int, default=8, help="collages in the picture")
  p.add_argument("--out", help="picture: collages, then each regressor's composites (PNG)")
  p.add_argument("--json", help="write the table as JSON here")
  return p.parse_args(argv)


def _named(spec: str) -> tuple[str, str]:
  name, sep, path = spec.partition("=")
  if not sep or not name or not path:
    raise errors.UserError(f"--regressor {spec!r}: expected NAME=DIR, e.g. RGBM=runs/reg-rgbm")
  return name, path


def main(argv=None) -> None:
  args = parse_args(argv)
  if args.num < 2:
    raise errors.UserError("--num must be at least 2 (a Fréchet distance needs a covariance)")
  if args.bootstrap < 0:
    raise errors.UserError("--bootstrap must be 0 (none) or a number of resamples")
  from jaxspatial.api.regressor import load_regressor
  from jaxspatial.metrics.registry import open_critic
  start = time.time()
  regressors = {name: load_regressor(path) for name, path in map(_named, args.regressor)}
  rows, collages, images = composites.compare(
      regressors, open_critic(args.critic), args.num, args.objects, args.collage_seed,
      args.bootstrap, args.rgb_fill, args.lighting)
  print(composites.format_table(rows))
  print(f"({args.num} collages, {time.time() - start:.0f} s)")
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
  if args.out:
    k = min(args.show, args.num)
    picture = np.concatenate([collages.collage[:k]] + [c[:k] for c in images.values()])
    imageio.save_grid(args.out, picture, cols=k, upscale_to=96)
    print(f"wrote {args.out}: rows = collage, " + ", ".join(images))


if __name__ == "__main__":
  cli.run(main)
