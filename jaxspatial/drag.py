r"""Drag points of a generated image to targets (DragGAN; with SpatialGAN's heatmaps).

    python -m jaxspatial.drag --checkpoint runs/sgan --seed 5 --handle 12,10 --target 12,20 \
        --out drag.png
    python -m jaxspatial.drag --checkpoint proj/tuned --latent proj/latent.npz --handle 20,12 \
        --target 20,20 --out drag.png          # a photo projected by python -m jaxspatial.project
    python -m jaxspatial.drag --checkpoint models/ffhq --seed 0 --truncation 0.7 \
        --handle 300,200 --target 300,260 --handle 400,256 --target 380,256 --mask face.png \
        --out drag.png

Points are ``ROW,COL`` pixels of the generator's output; ``--handle``/``--target`` pair up in
order. A SpatialGAN first moves the heatmap centres near the handles (no optimisation, the
paper's coarse step; ``--no-coarse`` skips it), then optimises the latent and the centres
together (``--fixed-centres``: the latent only). ``--mask`` (white = may change) keeps the
rest of the image. The picture shows the image before (handles red, targets blue) and after
(where the handles were tracked to); ``jaxspatial.edit.drag`` documents the method.

"converged" means the tracked points reached their targets, which is not always the content
moving: per handle the command also reports how far the content under it moved (its patch's
best match in the new image) and how much the image changed along the drag, and warns when a
handle sits on a nearly uniform region (tracking follows nothing there), when nothing changed,
and when a converged handle's content moved less than half the way (the generator stretched or
recoloured it instead).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import time

import numpy as np
from PIL import Image, ImageDraw

from jaxspatial import cli, errors, families, imageio
from jaxspatial.edit import drag as drag_lib

HANDLE, TARGET = (255, 48, 48), (48, 96, 255)


def parse_args(argv=None) -> argparse.Namespace:
  p = cli.ArgumentParser.for_command("drag", __doc__)
  p.add_edit_source("a stylegan2 or spatialgan model directory",
                    "latent (and heatmap) seed of the image",
                    "its W+, noise maps and heatmaps; --seed and --truncation are then unused")
  p.add_argument("--truncation", type=float, default=1.0)
  p.add_argument("--handle", type=cli.parse_row_col, action="append", required=True,
                 metavar="ROW,COL", help="a point to move (repeat)")
  p.add_argument("--target", type=cli.parse_row_col, action="append", required=True,
                 metavar="ROW,COL", help="where the matching handle should go (repeat)")
  p.add_argument("--mask", help="binary PNG of the generator's size: white = may change")
  p.add_argument("--steps", type=int, default=drag_lib.DragConfig.max_steps,
                 help="maximum optimisation steps")
  p.add_argument("--lr", type=float, default=drag_lib.DragConfig.lr)
  p.add_argument("--no-coarse", action="store_true", help="SpatialGAN: skip the centre move")
  p.add_argument("--fixed-centres", action="store_true",
                 help="SpatialGAN: optimise the latent only")
  p.add_argument("--size", type=int, default=256, help="tile size of the picture (px)")
  p.add_argument("--out", required=True, help="output PNG: before | after")
  return p.parse_args(argv)


def draw_points(image: np.ndarray, size: int, handles: np.ndarray, targets: np.ndarray,
                resolution: int) -> np.ndarray:
  """uint8 tile of ``size`` px: handles (red) with arrows to their targets (blue)."""
  tile = Image.fromarray(imageio.to_uint8(image)).resize((size, size), Image.NEAREST)
  draw = ImageDraw.Draw(tile)
  scale = size / resolution
  r = max(2, size // 64)
  for (hy, hx), (ty, tx) in zip(handles, targets):
    h = ((hx + 0.5) * scale, (hy + 0.5) * scale)
    t = ((tx + 0.5) * scale, (ty + 0.5) * scale)
    draw.line([h, t], fill=(255, 255, 255), width=max(1, size // 128))
    for (x, y), colour in ((h, HANDLE), (t, TARGET)):
      draw.ellipse([x - r, y - r, x + r, y + r], fill=colour, outline=(0, 0, 0))
  return np.asarray(tile)


def start_latent(model, args) -> tuple[np.ndarray, dict]:
  """(W+ of the image to drag, the synthesis keywords: heatmaps, noise): from ``--latent`` (the
  first projected image) or from ``--seed``/``--truncation``."""
  if args.latent:
    from jaxspatial.edit import projection
    p = projection.load_projection(args.latent, model)
    kw = {"noise": [m[:1] for m in p.noise]}
    if p.heatmaps is not None:
      kw["heatmaps"] = p.heatmaps.take(slice(0, 1))
    return p.ws[:1], kw
  z = model.sample_z(args.seed, 1)
  kw = {}
  controls = model.edit_controls(None, 1, seed=args.seed)   # SpatialGAN: fresh heatmaps
  if controls is not None:
    kw["heatmaps"] = controls
    w = model.mapping(z, controls)
  else:
    w = model.mapping(z)
  if args.truncation != 1.0:
    w = model.truncate(w, args.truncation)
  return np.repeat(w[:, None], model.num_ws, axis=1), kw


def main(argv=None) -> None:
  args = parse_args(argv)
  if len(args.handle) != len(args.target):
    raise errors.UserError(f"{len(args.handle)} --handle but {len(args.target)} --target; "
                        "give them in pairs")
  if args.steps < 1 or args.size < 8:
    raise errors.UserError("--steps must be positive and --size at least 8")
  import jaxspatial as js
  model = js.load(args.checkpoint, args.step)
  if not getattr(model, "draggable", False):
    kinds = families.kinds_with(lambda f: getattr(families.resolve(f.model), "draggable", False))
    raise errors.UserError(f"{args.checkpoint} holds a {model.kind} model; dragging needs a "
                           f"{' or '.join(kinds)} one")
  res = model.resolution
  drag_lib.check_points(args.handle, "handle", res)     # before anything is compiled
  drag_lib.check_points(args.target, "target", res)
  mask = None
  if args.mask:
    mask = imageio.read_mask(args.mask)
    if mask.shape[:2] != (res, res):
      raise errors.UserError(f"--mask is {mask.shape[1]}x{mask.shape[0]} px; the generator makes "
                          f"{res}x{res}")
  ws, kw = start_latent(model, args)
  before = model.synthesize(ws, **kw)[0]
  handles, targets = np.asarray(args.handle), np.asarray(args.target)
  config = drag_lib.DragConfig(max_steps=args.steps, lr=args.lr)
  start = time.time()
  with cli.progress(total=args.steps, desc="drag", unit="step") as bar:
    result = drag_lib.drag(model, ws, handles, targets, mask=mask, config=config,
                           coarse=not args.no_coarse, optimise_centers=not args.fixed_centres,
                           callback=lambda step, p: bar.update(1), **kw)
  seconds = time.time() - start
  tiles = [draw_points(before, args.size, handles, targets, res),
           draw_points(result.image, args.size, result.handles, targets, res)]
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(imageio.grid(np.stack(tiles), cols=2)).save(out)
  distance = np.linalg.norm(result.handles - targets, axis=-1)
  print(f"{'converged' if result.converged else 'stopped'} after {result.steps} steps in "
        f"{seconds:.1f} s; tracked handle-target distance (px): "
        f"{', '.join(f'{d:.1f}' for d in distance)}")
  reports = drag_lib.report(before, result.image, handles, targets, result.handles)
  for k, (h, t, r) in enumerate(zip(handles, targets, reports), 1):
    print(drag_lib.describe_report(k, h, t, r))
    for warning in drag_lib.report_warnings(k, h, r, result.converged):
      print(warning, file=sys.stderr)
  print(f"wrote {out}")


if __name__ == "__main__":
  cli.run(main)
