r"""Fill in the unknown pixels of an image with a latent regressor and its generator.

    python -m jaxspatial.inpaint --checkpoint runs/regressor --image x.png --mask known.png \
        --out out.png [--finetune 30] [--paste]

The output is ``G(E(x ⊙ m, m))`` (Chai et al. 2021): the generator's version of the whole image,
consistent with the known pixels (white in the binary mask, which must have the image's size).
``--paste`` puts the known pixels back over it.
"""

from __future__ import annotations

import argparse

import numpy as np

from jaxspatial import cli, imageio
from jaxspatial.api import regressor
from jaxspatial.api.regressor import load_regressor, regressor_config


def parse_args(argv=None) -> argparse.Namespace:
  p = cli.ArgumentParser.for_command("inpaint", __doc__)
  p.add_argument("--checkpoint", required=True, help="regressor checkpoint directory")
  p.add_argument("--image", required=True, help="input image")
  p.add_argument("--mask", required=True, help="binary mask: white = known pixel")
  p.add_argument("--out", required=True, help="output PNG")
  p.add_argument("--paste", action="store_true", help="keep the known pixels of the input")
  cli.add_finetune_args(p, regressor.FINETUNE_LR, regressor.FINETUNE_STEPS)
  return p.parse_args(argv)


def main(argv=None) -> None:
  args = parse_args(argv)
  resolution = int(regressor_config(args.checkpoint).model.resolution)
  x, mask = imageio.read_pair(args.image, args.mask, resolution)
  model = load_regressor(args.checkpoint)
  out = cli.finetune_and_inpaint(model, x, mask, args)
  if args.paste:
    out = np.where(mask > 0, x, out)
  print(f"wrote {imageio.save_image(args.out, out)}")


if __name__ == "__main__":
  cli.run(main)
