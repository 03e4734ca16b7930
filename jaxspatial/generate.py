"""Generate images from a checkpoint directory.

    python -m jaxspatial.generate --checkpoint runs/demo --seeds 0-15 --out grid.png
    python -m jaxspatial.generate --checkpoint models/ffhq --seeds 0-3 --truncation 0.7 \
        --noise random --out grid.png --save-npy images.npy
    python -m jaxspatial.generate --checkpoint models/ffhq --z z.npy --out grid.png
    python -m jaxspatial.generate --checkpoint models/cifar10 --class 3 --seeds 0-7 --out cats.png

Seed s draws ``m.sample_z(s, 1)``, so an image depends only on its seed. Tiles smaller than
128 px are enlarged in the grid (nearest neighbour, an integer factor) so that a 32 px model's
grid can be looked at, as the training sample grids are; ``--native-size`` keeps them as made.
``--save-npy`` always holds the images at the generator's size.
"""

from __future__ import annotations

import argparse

import numpy as np

from jaxspatial import cli, errors, imageio
from jaxspatial.models.stylegan2 import NOISE_MODES

VIEW_SIZE = 128      # smaller tiles are enlarged to at least this in the grid


def parse_args(argv=None) -> argparse.Namespace:
  p = cli.ArgumentParser(prog="python -m jaxspatial.generate",
                              description="Generate an image grid (and/or raw arrays) from a "
                                          "jaxspatial checkpoint directory.")
  p.add_checkpoint("directory from train or convert_torch")
  src = p.add_mutually_exclusive_group()
  src.add_argument("--seeds", default="0-15", help="seeds like 0-15 or 1,4,9 (default 0-15)")
  src.add_argument("--z", help=".npy file of latents, shaped like m.sample_z(0, n)")
  p.add_argument("--truncation", type=float, default=1.0, help="psi toward w_avg (default 1)")
  p.add_argument("--truncation-cutoff", type=int, default=None,
                 help="truncate only the first N layers of W+ (default: all)")
  p.add_argument("--class", dest="class_index", type=int, default=None,
                 help="class K for a conditional model (its one-hot label; required there)")
  p.add_argument("--noise", default="const", choices=NOISE_MODES,
                 help="per-layer noise: stored constant buffers (default), random, none")
  p.add_argument("--out", help="PNG grid to write")
  p.add_argument("--cols", type=int, help="grid columns (default: square)")
  p.add_argument("--native-size", action="store_true",
                 help=f"keep tiles at the generator's size (default: tiles below {VIEW_SIZE} px "
                      "are enlarged, nearest neighbour, for viewing)")
  p.add_argument("--save-npy", help="also write the images (n, H, W, 3) in [-1, 1] as .npy")
  return p.parse_args(argv)


def main(argv=None) -> None:
  args = parse_args(argv)
  if not args.out and not args.save_npy:
    raise errors.UserError("nothing to write: give --out grid.png and/or --save-npy images.npy")
  import jaxspatial as js
  m = js.load(args.checkpoint, args.step)
  if args.z:
    path = errors.existing_file(args.z, "a .npy file")
    with open(path, "rb") as f:
      if f.read(6) != b"\x93NUMPY":
        raise errors.UserError(f"{path} is not a .npy file (written by numpy.save)")
    try:
      z = np.load(path)
    except (ValueError, EOFError, OSError) as e:
      raise errors.UserError(f"{path}: not a .npy array ({type(e).__name__}: {e})") from None
    expected = m.sample_z(0, 1).shape[1:]
    if z.shape[1:] != expected:
      raise errors.UserError(f"{path} has shape {z.shape}; expected (n, {', '.join(map(str, expected))})")
  else:
    seeds = cli.parse_int_ranges(args.seeds)
    z = np.concatenate([m.sample_z(s, 1) for s in seeds])
  c_dim = getattr(m, "c_dim", 0)
  if c_dim and args.class_index is None:
    raise errors.UserError(f"this model is conditional ({c_dim} classes): give --class K "
                        f"(0..{c_dim - 1})")
  kw = {} if args.truncation_cutoff is None else {"truncation_cutoff": args.truncation_cutoff}
  images = []
  for i in cli.progress(range(0, len(z), m.batch_size), desc="generate", unit="batch"):
    zc = z[i:i + m.batch_size]
    if args.class_index is not None:
      kw["labels"] = np.full(len(zc), args.class_index)
    images.append(m.generate(zc, truncation=args.truncation, noise=args.noise, **kw))
  images = np.concatenate(images)
  if args.out:
    upscale = 0 if args.native_size else VIEW_SIZE
    imageio.save_grid(args.out, images, cols=args.cols, upscale_to=upscale)
    shown = -(-upscale // m.resolution) * m.resolution if m.resolution < upscale else m.resolution
    print(f"wrote {args.out} ({len(images)} images, {m.resolution}x{m.resolution}"
          + (f", enlarged to {shown}x{shown} for viewing; --native-size keeps them"
             if shown != m.resolution else "") + ")")
  if args.save_npy:
    np.save(args.save_npy, images)
    print(f"wrote {args.save_npy} {images.shape}")


if __name__ == "__main__":
  cli.run(main)
