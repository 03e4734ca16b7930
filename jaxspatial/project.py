r"""Project a real image into a StyleGAN2, SSN or SpatialGAN (stylegan2-ada's projector), then
optionally tune the generator around it (PTI).

    python -m jaxspatial.scene --checkpoint runs/demo --index 35 --out scene.png   # a real image
    python -m jaxspatial.project --checkpoint runs/demo --image scene.png --out proj/
    python -m jaxspatial.project --checkpoint runs/demo --image photo.png --out proj/ \
        --init regressor:runs/reg --steps 300 --pti 100 --loss critic
    python -m jaxspatial.drag --checkpoint proj/tuned --latent proj/latent.npz \
        --handle 20,12 --target 20,20 --out drag.png          # then edit the photo

Writes ``OUT/latent.npz`` (the optimised latent, W+, noise maps, SpatialGAN heatmaps; read by
``drag``/``edit_heatmap``/``resample --latent``), ``OUT/target.png``, ``OUT/projected.png``,
``OUT/progress.png`` (the projection every few steps) and, with ``--pti``, ``OUT/tuned/`` (a model
directory) and ``OUT/projected_pti.png``; prints one summary line. An image of another size is
centre-cropped to a square and resized (Lanczos) to the generator's, with a notice, as the
official projector does; an image that is not RGB (grey, with alpha, ...) is an error.
``jaxspatial.edit.projection`` documents the method.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import tempfile
from typing import Any

import numpy as np
from PIL import Image

from jaxspatial import cli, errors, imageio
from jaxspatial.edit import projection as proj_lib


def parse_args(argv=None) -> argparse.Namespace:
  d = proj_lib.ProjectionConfig()
  p = cli.ArgumentParser.for_command("project", __doc__)
  p.add_checkpoint("a stylegan2, ssn or spatialgan model dir")
  p.add_argument("--image", required=True, help="the RGB image to project (PNG, JPEG, ...)")
  p.add_argument("--out", required=True, help="output folder (created)")
  p.add_argument("--space", choices=proj_lib.SPACES, default=d.space,
                 help="w: one latent for every layer (SSN: one per block, before its encoder); "
                      "wplus: one per layer")
  p.add_argument("--steps", type=int, default=d.steps, help=f"Adam steps (default {d.steps})")
  p.add_argument("--loss", choices=proj_lib.LOSS_CHOICES, default=d.loss,
                 help="lpips: LPIPS-VGG (needs the converted lpips-vgg weights); mse: pixels; "
                      "critic: features of the checkpoint's own discriminator; auto (default): "
                      "lpips when its weights are installed, else critic (with a notice), "
                      "else mse")
  p.add_argument("--init", default="w_avg", metavar="w_avg|regressor:DIR",
                 help="start at the mean W (default) or at a latent regressor's prediction "
                      "(stylegan2 only; --steps 0 gives the regressor alone)")
  p.add_argument("--pti", type=int, default=0, metavar="STEPS",
                 help="then tune the generator around the projection for STEPS Adam steps "
                      "(pivotal tuning; the paper uses 350); 0 = off")
  p.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
  p.add_argument("--fixed-noise", action="store_true",
                 help="keep the generator's constant noise maps instead of optimising them")
  p.add_argument("--seed", type=int, default=0, help="seed of the latent noise and heatmap start")
  return p.parse_args(argv)


def load_target(path: str, resolution: int) -> tuple[np.ndarray, str | None]:
  """The image as (R, R, 3) float32 in [-1, 1] and a notice if it was cropped/resized;
  UserError for a missing file, a file that is not an image, or one that is not RGB
  (:func:`jaxspatial.imageio.rgb_target`)."""
  file = errors.existing_file(path, "an image file")
  try:
    with Image.open(file) as im:
      im.load()
      x, notice = imageio.rgb_target(im, resolution, path)
  except (OSError, ValueError, Image.DecompressionBombError) as e:
    raise errors.UserError(f"{path}: not a readable image ({e})") from None
  return x, notice and f"note: {notice}"


def parse_init(text: str) -> str | None:
  """``w_avg`` -> None, ``regressor:DIR`` -> DIR."""
  if text == "w_avg":
    return None
  if text.startswith("regressor:") and text.split(":", 1)[1]:
    return text.split(":", 1)[1]
  raise errors.UserError(f"--init {text!r}: expected w_avg or regressor:DIR")


def regressor_start(model, directory: str, x: np.ndarray) -> tuple[np.ndarray, Any]:
  """The regressor's (W+, heatmaps or None) for ``x`` (a SpatialGAN regressor predicts the
  heatmap too); UserError unless it was trained on this generator's shape."""
  from jaxspatial import regressor
  r = regressor.load_regressor(directory)
  keys = ("kind", "resolution", "z_dim", "w_dim", "n_mlp", "channel_base", "channel_max")
  g_cfg = r.config.model.generator
  diff = [k for k in keys if g_cfg.get(k) != model.config.model.get(k)]
  if diff:
    raise errors.UserError(f"the regressor {directory} was trained for another generator "
                           f"({', '.join(diff)}); it needs the {g_cfg.get('kind')} it inverts")
  code = r.invert(x)
  if isinstance(code, dict):
    return code["ws"], r.heatmaps(code)
  return code, None


def progress_picture(projection: proj_lib.Projection, tile: int = 128) -> np.ndarray:
  """Target, then the projection at each snapshot, one row, as uint8."""
  images = [projection.target[0]] + [img[0] for _, img in projection.snapshots]
  tiles = imageio.to_uint8(np.stack(images))
  f = max(1, -(-tile // tiles.shape[1]))
  return imageio.grid(tiles.repeat(f, axis=1).repeat(f, axis=2), cols=len(tiles))


def main(argv=None) -> None:
  args = parse_args(argv)
  if args.steps < 0 or args.pti < 0:
    raise errors.UserError("--steps and --pti must be >= 0")
  reg_dir = parse_init(args.init)
  import jaxspatial as js
  from jaxspatial import checkpoint
  config = checkpoint.read_config(args.checkpoint, args.step,
                                  kind=tuple(proj_lib.projectable_kinds()), user="projection")
  kind = config.model.kind
  x, notice = load_target(args.image, int(config.model.resolution))
  if notice:
    print(notice)
  model = js.load(args.checkpoint, args.step)
  loss, loss_notice = proj_lib.resolve_loss(model, args.loss)
  if loss_notice:
    print(loss_notice)
  init_ws, init_heatmaps = (None, None) if reg_dir is None else regressor_start(model, reg_dir,
                                                                                 x[None])
  cfg = proj_lib.ProjectionConfig(steps=args.steps, space=args.space, loss=loss,
                                  lr=args.lr, optimize_noise=not args.fixed_noise, seed=args.seed)
  with cli.progress(total=args.steps, desc="project", unit="step") as bar:
    p = model.project(x, init_ws=init_ws, init_heatmaps=init_heatmaps, config=cfg,
                      callback=lambda i: bar.update(1))
  tuned = None
  if args.pti:
    from jaxspatial.edit import pti
    with cli.progress(total=args.pti, desc="pti", unit="step") as bar:
      tuned = pti.pivotal_tuning(model, p, pti.PTIConfig(steps=args.pti, loss=loss,
                                                         seed=args.seed),
                                 callback=lambda i: bar.update(1))
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  with tempfile.TemporaryDirectory(dir=out) as tmp:   # nothing half-written on failure
    tmp = pathlib.Path(tmp)
    p.save(tmp / "latent.npz")
    Image.fromarray(imageio.to_uint8(x)).save(tmp / "target.png")
    Image.fromarray(imageio.to_uint8(p.image[0])).save(tmp / "projected.png")
    Image.fromarray(progress_picture(p)).save(tmp / "progress.png")
    if tuned is not None:
      pti.save_tuned(model, tuned.g_vars, tmp / "tuned")
      Image.fromarray(imageio.to_uint8(tuned.image[0])).save(tmp / "projected_pti.png")
    for item in tmp.iterdir():
      dest = out / item.name
      if dest.is_dir():
        shutil.rmtree(dest)
      item.replace(dest)
  line = (f"projected {args.image} into {kind} ({args.space}, {loss}, {args.steps} steps, "
          f"init {args.init}): loss {p.loss[0]:.4g}, PSNR {p.psnr[0]:.2f} dB, {p.seconds:.1f} s")
  if tuned is not None:
    line += (f"; PTI {args.pti} steps: loss {tuned.loss_before[0]:.4g} -> "
             f"{tuned.loss_after[0]:.4g}, PSNR {tuned.psnr[0]:.2f} dB, {tuned.seconds:.1f} s")
  print(line)
  print(f"wrote {out}/latent.npz, projected.png, target.png, progress.png"
        + (", projected_pti.png, tuned/" if tuned is not None else ""))


if __name__ == "__main__":
  cli.run(main)
