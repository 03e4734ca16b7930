r"""Composite a collage of image parts into one coherent image with a latent regressor.

    python -m jaxspatial.composite --checkpoint runs/regressor \
        --part sky.png:sky_mask.png --part tower.png:tower_mask.png --out out.png [--finetune 30]

Parts are pasted in the order given (later over earlier); the regressor sees the collage and
the union of the masks and the generator renders ``G(E(collage, ∪ masks))`` (Chai et al. 2021,
Eq. 4). Masks are binary images (white = take this pixel from the part's image) of the same
size as their image; images of another size than the generator's are resized.
"""

from __future__ import annotations

import argparse

from jaxspatial import cli, imageio
from jaxspatial.api import regressor
from jaxspatial.api.regressor import load_regressor, regressor_config


def parse_args(argv=None) -> argparse.Namespace:
  p = cli.ArgumentParser.for_command("composite", __doc__)
  p.add_argument("--checkpoint", required=True, help="regressor checkpoint directory")
  p.add_argument("--part", action="append", required=True, metavar="IMAGE:MASK",
                 help="one layer: an image and its binary mask (repeat; pasted in order). "
                      "IMAGE alone uses all of it")
  p.add_argument("--out", required=True, help="output PNG")
  p.add_argument("--collage", metavar="PNG", help="also save the collage (the regressor's input, "
                                                  "unknown pixels grey)")
  cli.add_finetune_args(p, regressor.FINETUNE_LR, regressor.FINETUNE_STEPS)
  return p.parse_args(argv)


def main(argv=None) -> None:
  args = parse_args(argv)
  resolution = int(regressor_config(args.checkpoint).model.resolution)
  parts = [imageio.parse_part(spec, resolution) for spec in args.part]
  model = load_regressor(args.checkpoint)
  collage, union = model.collage(parts)
  out = cli.finetune_and_inpaint(model, collage, union, args)
  if args.collage:
    imageio.save_image(args.collage, collage)
  print(f"wrote {imageio.save_image(args.out, out)}")


if __name__ == "__main__":
  cli.run(main)
