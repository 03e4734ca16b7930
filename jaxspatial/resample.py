"""Low-distortion block resampling with an SSN checkpoint (the paper's Figures 6-8).

    python -m jaxspatial.resample --checkpoint DIR --seed 3 --blocks 0,1 0,2 --num 6 \
        --out strip.png
    python -m jaxspatial.resample --checkpoint DIR --latent proj/latent.npz --blocks 0,1 \
        --out strip.png        # a photo projected by python -m jaxspatial.project

Draws the image of ``sample_z(seed)`` followed by ``--num`` resamples side by side; in
resample ``k`` (1..N) the listed latent blocks are redrawn with seed ``resample_seed + k - 1``
(``--resample-seed``, default ``seed + 1``) and every other block is kept. The image blocks
that belong to the resampled latent blocks are outlined in every tile.
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib

import numpy as np
from PIL import Image

from jaxspatial import cli, errors, imageio
from jaxspatial.models.stylegan2 import NOISE_MODES

OUTLINE = (255, 32, 32)


def parse_args(argv=None) -> argparse.Namespace:
  p = cli.ArgumentParser.for_command("resample", __doc__)
  p.add_edit_source("SSN directory from train or convert_torch", "seed of the original latent",
                    "--truncation and --noise are then unused: its own noise maps are kept")
  p.add_argument("--blocks", nargs="+", required=True, metavar="ROW,COL",
                 help="latent blocks to redraw, e.g. --blocks 0,1 0,2 (row 0 is the top)")
  p.add_argument("--num", type=int, default=6, help="number of resamples (default 6)")
  p.add_argument("--resample-seed", type=int,
                 help="seed of the first resample; resample k uses this + k - 1 "
                      "(default: --seed + 1)")
  p.add_argument("--truncation", type=float, default=1.0, help="psi toward w_avg (default 1)")
  p.add_argument("--noise", default="const", choices=NOISE_MODES,
                 help="per-layer noise (default: the stored constant buffers, so only the "
                      "latent blocks differ between tiles)")
  p.add_argument("--tile", type=int, default=256,
                 help="smaller images are upscaled (nearest) to at least this size (default 256)")
  p.add_argument("--out", required=True, help="PNG strip to write")
  p.add_argument("--save-npy", help="also write the images (1 + N, H, W, 3) in [-1, 1] as .npy")
  return p.parse_args(argv)


def outline_blocks(tile: np.ndarray, blocks: list[tuple[int, int]], grid: tuple[int, int],
                   width: int) -> np.ndarray:
  """Draws the border of each listed block of a (nh, nw) grid on a uint8 (H, W, 3) tile."""
  out = tile.copy()
  h, w = tile.shape[:2]
  bh, bw = h / grid[0], w / grid[1]
  for r, c in blocks:
    y0, y1 = int(round(r * bh)), int(round((r + 1) * bh))
    x0, x1 = int(round(c * bw)), int(round((c + 1) * bw))
    out[y0:y0 + width, x0:x1] = OUTLINE
    out[y1 - width:y1, x0:x1] = OUTLINE
    out[y0:y1, x0:x0 + width] = OUTLINE
    out[y0:y1, x1 - width:x1] = OUTLINE
  return out


def sampled_images(m, args, blocks, first: int) -> np.ndarray:
  """The image of ``sample_z(seed)`` and its resamples, (1 + N, H, W, 3)."""
  z = m.sample_z(args.seed, 1)
  z_all = np.concatenate([z] + [m.resample(z, blocks, first + k) for k in range(args.num)])
  return np.concatenate([
      m.generate(z_all[i:i + m.batch_size], truncation=args.truncation, noise=args.noise)
      for i in cli.progress(range(0, len(z_all), m.batch_size), desc="resample", unit="batch")])


def projection_images(m, args, blocks, first: int) -> np.ndarray:
  """The first projected image of ``--latent`` and its resamples, with its noise maps."""
  from jaxspatial.edit import projection
  p = projection.load_projection(args.latent, m)
  p = dataclasses.replace(p, ws=p.ws[:1], latent=p.latent[:1], noise=[n[:1] for n in p.noise])
  ws = np.concatenate([p.ws] + [projection.resampled_ws(m, p, blocks, first + k)
                                for k in cli.progress(range(args.num), desc="resample")])
  return m.synthesize(ws, noise=p.noise)


def main(argv=None) -> None:
  args = parse_args(argv)
  if args.num < 1:
    raise errors.UserError(f"--num must be at least 1, got {args.num}")
  blocks = [cli.parse_row_col(b, int, "0,1") for b in args.blocks]
  import jaxspatial as js
  m = js.load(args.checkpoint, args.step)
  if m.kind != "ssn":
    raise errors.UserError(f"{args.checkpoint} holds a {m.kind!r} model; resampling needs an SSN "
                        "(train configs/ssn.py or convert_torch --target ssn)")
  first = args.seed + 1 if args.resample_seed is None else args.resample_seed
  images = (projection_images(m, args, blocks, first) if args.latent
            else sampled_images(m, args, blocks, first))
  tiles = imageio.to_uint8(images)
  if tiles.shape[1] < args.tile:
    f = -(-args.tile // tiles.shape[1])
    tiles = tiles.repeat(f, axis=1).repeat(f, axis=2)
  width = max(1, tiles.shape[1] // 128)
  tiles = np.stack([outline_blocks(t, blocks, m.grid, width) for t in tiles])
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(imageio.grid(tiles, cols=len(tiles), pad=max(2, width * 2))).save(out)
  source = args.latent or f"seed {args.seed}"
  print(f"wrote {out}: original ({source}) + {args.num} resamples of blocks "
        f"{' '.join(f'{r},{c}' for r, c in blocks)} (seeds {first}-{first + args.num - 1})")
  if args.save_npy:
    np.save(args.save_npy, images)
    print(f"wrote {args.save_npy} {images.shape}")


if __name__ == "__main__":
  cli.run(main)
