r"""One-shot attribute edit with a latent regressor: learn a change from a single example pair.

    python -m jaxspatial.edit_attribute --checkpoint runs/regressor \
        --source x1.png --edited x1_edited.png --target x2.png [--target x3.png] --out out.png

The change from SOURCE to EDITED (e.g. a pasted tower, a recoloured sky) is moved to each
TARGET in latent space: ``G(E(edited) − E(source) + E(target))`` (Chai et al. 2021). Several
targets are written side by side.
"""

from __future__ import annotations

import argparse

import numpy as np

from jaxspatial import cli, imageio
from jaxspatial.api.regressor import load_regressor, regressor_config


def parse_args(argv=None) -> argparse.Namespace:
  p = cli.ArgumentParser.for_command("edit_attribute", __doc__)
  p.add_argument("--checkpoint", required=True, help="regressor checkpoint directory")
  p.add_argument("--source", required=True, help="the example before the edit")
  p.add_argument("--edited", required=True, help="the same example after the edit")
  p.add_argument("--target", action="append", required=True,
                 help="image to apply the edit to (repeat for several)")
  p.add_argument("--out", required=True, help="output PNG (targets side by side)")
  return p.parse_args(argv)


def main(argv=None) -> None:
  args = parse_args(argv)
  res = int(regressor_config(args.checkpoint).model.resolution)
  x1 = imageio.read_pair(args.source, None, res)[0]
  x1_mod = imageio.read_pair(args.edited, None, res)[0]
  x2 = np.concatenate([imageio.read_pair(t, None, res)[0] for t in args.target])
  model = load_regressor(args.checkpoint)
  out = model.edit(x1, x1_mod, x2)
  print(f"wrote {imageio.save_image(args.out, out)}")


if __name__ == "__main__":
  cli.run(main)
