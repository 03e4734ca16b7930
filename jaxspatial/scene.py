"""Write a real shapes scene that a run never trained on, and its object masks, as PNGs: the
image to try ``project`` on (and the masks for ``drag --mask`` or ``composite --part``).

    python -m jaxspatial.scene --checkpoint runs/demo --out scene.png
    python -m jaxspatial.scene --checkpoint runs/demo --index 35 --out scene_35.png
    python -m jaxspatial.project --checkpoint runs/demo --image scene_35.png --out proj/

The scene is drawn from the checkpoint's own shapes data (its resolution, objects per scene and
data seed), at the generator's size. Held out: the training stream's shuffle is a pure function
of the run's seed, so the indices its ``total_steps x batch_size`` positions visited are
recomputed exactly; without ``--index`` the first index never visited is written, and an
``--index`` that was visited gets a note. Writes OUT and one mask per object beside it,
``<OUT stem>_mask<k>.png`` (white = the object's visible pixels, after occlusion).
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
from PIL import Image

from jaxspatial import cli, errors


def parse_args(argv=None) -> argparse.Namespace:
  p = cli.ArgumentParser.for_command("scene", __doc__)
  p.add_checkpoint("a run trained on the shapes data (its data config is used)")
  p.add_argument("--index", type=int, metavar="N",
                 help="dataset index of the scene (default: the first one the run never saw)")
  p.add_argument("--out", required=True, help="PNG of the scene; masks are written beside it")
  return p.parse_args(argv)


def main(argv=None) -> None:
  args = parse_args(argv)
  if not args.out.lower().endswith(".png"):
    raise errors.UserError(f"--out {args.out}: give a .png path")
  if args.index is not None and args.index < 0:
    raise errors.UserError(f"--index must be >= 0, got {args.index}")
  from jaxspatial import checkpoint
  from jaxspatial.benchmarks.projection_real import held_out_indices
  from jaxspatial.data import pipeline
  from jaxspatial.data.shapes import CLASS_NAMES, ShapesSource
  config = checkpoint.read_config(args.checkpoint, args.step)
  data = config.get("data")
  if data is None or data.get("source") != "shapes" or "total_steps" not in config:
    source = data.get("source") if data is not None else None
    raise errors.UserError(f"{args.checkpoint} was not trained on the shapes data "
                        f"(data.source {source!r}); scene draws that run's held-out shapes "
                        "scenes")
  first = held_out_indices(config, 1)[0]
  index = first if args.index is None else args.index
  held_out = index == first or index in held_out_indices(config, index + 1)
  if not held_out:
    print(f"note: the run trained on scene {index}; its first held-out scene is {first}")
  resolution = int(config.model.get("resolution", data.resolution))
  data = pipeline.with_defaults(data)
  src = ShapesSource(resolution, max_objects=int(data.max_objects),
                     num_objects=int(data.num_objects), seed=int(data.seed),
                     length=int(data.length))
  if index >= len(src):
    raise errors.UserError(f"--index {index} is outside the run's {len(src)} scenes")
  example = src[index]
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(example["image"]).save(out)
  masks = []
  for k in range(int(example["num_objects"])):
    path = out.with_name(f"{out.stem}_mask{k}.png")
    Image.fromarray((example["masks"][k] * 255).astype(np.uint8)).save(path)
    masks.append(f"{path.name} ({CLASS_NAMES[int(example['class_ids'][k])]})")
  print(f"wrote {out} (shapes scene {index}, {resolution}x{resolution}, "
        f"{'held out: the run never trained on it' if held_out else 'one the run trained on'}) "
        f"and masks {', '.join(masks)}")


if __name__ == "__main__":
  cli.run(main)
