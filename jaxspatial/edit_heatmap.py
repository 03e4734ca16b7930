"""Edit a SpatialGAN image through its heatmap: move, remove, resize, restyle.

    python -m jaxspatial.edit_heatmap --checkpoint runs/sgan --seed 5 --move 0:0.3,-0.2 \
        --out before_after.png
    python -m jaxspatial.edit_heatmap --checkpoint runs/sgan --latent proj/latent.npz \
        --move 0:0.3,0 --out photo_edit.png       # a photo projected by jaxspatial.project
    python -m jaxspatial.edit_heatmap --checkpoint runs/indoor --seed 2 --remove 1 --scale 0:1.5 \
        --restyle 2 --out edit.png
    python -m jaxspatial.edit_heatmap --checkpoint runs/sgan --seed 0 --grid layouts --rows 3 \
        --cols 6 --out same_latent.png      # each row: one latent, many layouts
    python -m jaxspatial.edit_heatmap --checkpoint runs/indoor --seed 0 --grid latents \
        --out same_layout.png               # each row: one layout, many latents (Figs. 5, 10)

Edits apply in the order given; ``--move I:DY,DX`` shifts centre I by (DY, DX) in heatmap
units ([-1, 1] spans the image; +DY is down, +DX is right) and drags the centres derived
from it; ``--scale I:F`` multiplies its sigma by F; ``--remove I`` drops it; ``--restyle I``
(indoor models) redraws object I's style latent. The picture shows the image before and
after, with the heatmap centres drawn over them (level 0 largest; arrows for moves).
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
from PIL import Image, ImageDraw

from jaxspatial import cli, errors, imageio
from jaxspatial.models.stylegan2 import NOISE_MODES

LEVEL_COLOURS = ((255, 64, 64), (255, 200, 0), (0, 200, 255), (160, 255, 120))


class _Edit(argparse.Action):
  """Collects edits in command-line order as ``(op, text)`` in ``namespace.edits``."""

  def __call__(self, parser, namespace, values, option_string=None):
    edits = list(getattr(namespace, "edits", None) or [])
    edits.append((self.dest, values))
    namespace.edits = edits


def parse_args(argv=None) -> argparse.Namespace:
  p = cli.ArgumentParser.for_command("edit_heatmap", __doc__)
  p.add_edit_source("SpatialGAN directory from train", "latent and heatmap seed",
                    "its W+, noise maps and optimised heatmaps")
  p.add_argument("--layout-seed", type=int, help="heatmap seed if different from --seed")
  p.add_argument("--move", action=_Edit, metavar="I:DY,DX", help="move centre I (repeatable)")
  p.add_argument("--remove", action=_Edit, metavar="I", help="remove centre I")
  p.add_argument("--scale", action=_Edit, metavar="I:F", help="multiply centre I's sigma by F")
  p.add_argument("--restyle", action=_Edit, metavar="I",
                 help="new style latent for object I (indoor models)")
  p.add_argument("--restyle-seed", type=int, default=1, help="seed of --restyle latents")
  p.add_argument("--grid", choices=("layouts", "latents"),
                 help="instead of an edit: rows of one latent with many layouts (layouts) or "
                      "of one layout with many latents (latents)")
  p.add_argument("--rows", type=int, default=3, help="grid rows (default 3)")
  p.add_argument("--cols", type=int, default=6, help="grid columns (default 6)")
  p.add_argument("--truncation", type=float, default=1.0, help="psi toward w_avg (default 1)")
  p.add_argument("--noise", default="const", choices=NOISE_MODES)
  p.add_argument("--no-centres", action="store_true", help="do not draw the heatmap centres")
  p.add_argument("--size", type=int, default=256, help="tile size in the picture (default 256)")
  p.add_argument("--out", required=True, help="PNG to write")
  args = p.parse_args(argv)
  args.edits = getattr(args, "edits", None) or []
  return args


def _index(text: str) -> int:
  try:
    return int(text)
  except ValueError:
    raise errors.UserError(f"cannot read centre index {text!r}") from None


def parse_edit(op: str, text: str) -> tuple:
  """``("move", "0:0.3,-0.2")`` -> ``("move", 0, 0.3, -0.2)`` etc.; UserError if malformed."""
  if op in ("remove", "restyle"):
    return op, _index(text)
  if ":" not in text:
    form = "I:DY,DX" if op == "move" else "I:F"
    raise errors.UserError(f"--{op} {text!r}: expected {form}")
  i, rest = text.split(":", 1)
  try:
    values = [float(v) for v in rest.split(",")]
  except ValueError:
    raise errors.UserError(f"--{op} {text!r}: cannot read numbers in {rest!r}") from None
  if len(values) != (2 if op == "move" else 1):
    raise errors.UserError(f"--{op} {text!r}: expected {'DY,DX' if op == 'move' else 'one factor'}")
  if op == "scale" and values[0] <= 0:
    raise errors.UserError(f"--scale {text!r}: the factor must be positive")
  return (op, _index(i), *values)


def apply_edits(model, z: np.ndarray, heatmaps, edits: list[tuple], restyle_seed: int):
  """Applies parsed edits in order; returns (z, heatmaps)."""
  for k, (op, i, *values) in enumerate(edits):
    if not 0 <= i < heatmaps.num_centers:
      raise errors.UserError(f"--{op}: centre {i} out of range (this model has centres "
                          f"0..{heatmaps.num_centers - 1})")
    if op == "move":
      heatmaps = heatmaps.move(i, *values)
    elif op == "scale":
      heatmaps = heatmaps.scale(i, values[0])
    elif op == "remove":
      heatmaps = heatmaps.remove(i)
    else:
      z = model.restyle(z, i, restyle_seed + k)
  return z, heatmaps


def draw_centres(image: np.ndarray, heatmaps, size: int, previous=None) -> np.ndarray:
  """uint8 tile of ``size`` px with the (present) centres of heatmap 0 drawn over it;
  arrows from ``previous`` positions where they moved."""
  tile = Image.fromarray(imageio.to_uint8(image)).resize((size, size), Image.NEAREST)
  draw = ImageDraw.Draw(tile)
  px = (np.asarray(heatmaps.centers[0]) + 1) * (size - 1) / 2
  old = None if previous is None else (np.asarray(previous.centers[0]) + 1) * (size - 1) / 2
  for i in sorted(range(heatmaps.num_centers), key=lambda i: heatmaps.levels[i]):
    if heatmaps.amplitudes[0, i] == 0:
      continue
    level = heatmaps.levels[i]
    colour = LEVEL_COLOURS[min(level, len(LEVEL_COLOURS) - 1)]
    r = max(2, size // (24 * (level + 1)))
    y, x = px[i]
    width = max(1, size // 128)
    for fill, w in (((0, 0, 0), width + 2), (colour, width)):   # dark halo, then colour
      if old is not None and np.linalg.norm(old[i] - px[i]) > 0.5:
        draw.line([(old[i][1], old[i][0]), (x, y)], fill=fill, width=w)
      draw.ellipse([x - r, y - r, x + r, y + r], outline=fill, width=w)
    draw.text((x + r + 1, y - r - 1), str(i), fill=colour, stroke_width=1, stroke_fill=(0, 0, 0))
  return np.asarray(tile)


def _tile(image, heatmaps, args, previous=None) -> np.ndarray:
  if args.no_centres:
    return np.asarray(Image.fromarray(imageio.to_uint8(image)).resize(
        (args.size, args.size), Image.NEAREST))
  return draw_centres(image, heatmaps, args.size, previous)


def edit_projection_picture(model, args) -> np.ndarray:
  """Before/after tiles of the first image of a projection (``--latent``) under the edits."""
  from jaxspatial.edit import projection
  p = projection.load_projection(args.latent, model)
  if p.heatmaps is None:
    raise errors.UserError(f"{args.latent} holds no heatmaps (not a SpatialGAN projection)")
  edits = [parse_edit(op, text) for op, text in args.edits]
  if any(op == "restyle" for op, *_ in edits):
    raise errors.UserError("--restyle redraws a z latent; a projection has none (use --move, "
                        "--scale or --remove)")
  ws, noise, h = p.ws[:1], [m[:1] for m in p.noise], p.heatmaps.take(slice(0, 1))
  _, h2 = apply_edits(model, None, h, edits, args.restyle_seed)
  gen = lambda h: model.synthesize(ws, h, noise=noise)[0]
  tiles = [_tile(gen(h), h, args), _tile(gen(h2), h2, args, previous=h)]
  return imageio.grid(np.stack(tiles), cols=2)


def edit_picture(model, args) -> np.ndarray:
  if args.latent:
    return edit_projection_picture(model, args)
  layout_seed = args.seed if args.layout_seed is None else args.layout_seed
  z, h = model.sample_z(args.seed, 1), model.sample_heatmaps(layout_seed, 1)
  edits = [parse_edit(op, text) for op, text in args.edits]
  z2, h2 = apply_edits(model, z, h, edits, args.restyle_seed)
  gen = lambda z, h: model.generate(z, truncation=args.truncation, noise=args.noise,
                                    heatmaps=h)[0]
  tiles = [_tile(gen(z, h), h, args), _tile(gen(z2, h2), h2, args, previous=h)]
  return imageio.grid(np.stack(tiles), cols=2)


def grid_picture(model, args) -> np.ndarray:
  """A latent x layout cross product: ``layouts`` puts latent seed+r in row r and layout
  seed+c in column c; ``latents`` puts layout seed+r in row r and latent seed+c in column c."""
  tiles = []
  for r in cli.progress(range(args.rows), desc="grid", unit="row"):
    if args.grid == "layouts":
      z = np.repeat(model.sample_z(args.seed + r, 1), args.cols, axis=0)
      h = model.sample_heatmaps(args.seed, args.cols)
    else:
      z = model.sample_z(args.seed, args.cols)
      h = model.sample_heatmaps(args.seed + r, 1).take(np.zeros(args.cols, int))
    images = model.generate(z, truncation=args.truncation, noise=args.noise, heatmaps=h)
    tiles += [_tile(img, h.take(np.asarray([c])), args) for c, img in enumerate(images)]
  return imageio.grid(np.stack(tiles), cols=args.cols)


def main(argv=None) -> None:
  args = parse_args(argv)
  if args.grid and args.latent:
    raise errors.UserError("--grid draws sampled latents; it cannot be combined with --latent")
  if args.grid and args.edits:
    raise errors.UserError("give either edits (--move/--remove/--scale/--restyle) or --grid")
  if not args.grid and not args.edits:
    raise errors.UserError("nothing to do: give an edit such as --move 0:0.3,-0.2, or --grid")
  if args.rows < 1 or args.cols < 1 or args.size < 8:
    raise errors.UserError("--rows and --cols must be positive and --size at least 8")
  import jaxspatial as js
  model = js.load(args.checkpoint, args.step)
  if model.kind != "spatialgan":
    raise errors.UserError(f"{args.checkpoint} holds a {model.kind} model, not a spatialgan one")
  picture = grid_picture(model, args) if args.grid else edit_picture(model, args)
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(picture).save(out)
  print(f"wrote {out} ({picture.shape[1]}x{picture.shape[0]})")


if __name__ == "__main__":
  cli.run(main)
