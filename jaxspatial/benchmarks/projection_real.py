r"""Real shapes scenes held out from a demo run, projected into its StyleGAN2 (docs/projection.md).

    python -m jaxspatial.benchmarks.projection_real --generator runs/demo --regressor runs/reg \
        --num 32 --steps 1000 --pti 100 --loss critic --out docs/images

The held-out scenes are the first ``--num`` dataset indices that the run's first
``total_steps × batch_size`` stream positions never visited (the training pipeline's shuffle
is a pure function of the run's seed, so the visited set is recomputed exactly). Methods: the
regressor alone (0 steps from its prediction), the projector from ``w̄``, the projector
started from the regressor, and each followed by pivotal tuning of one generator copy per
image. Metrics per image: PSNR (dB, range 2), masked L1 on the scene's objects (the union of
its object masks, [-1, 1] units, the regressor paper's measure) and the critic distance
(:func:`jaxspatial.nets.critic.feature_distance` with the run's own discriminator; it is
the projection loss when ``--loss critic``); mean ± 95% interval over the scenes.
"""

from __future__ import annotations

import argparse
import pathlib
import time

import grain
import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from jaxspatial import cli, imageio
from jaxspatial.data import pipeline
from jaxspatial.edit import projection, pti
from jaxspatial.nets import critic


def held_out_indices(config, num: int) -> list[int]:
  """The first ``num`` shapes indices the run ``config`` never trained on."""
  length = int(pipeline.with_defaults(config.data).length)
  seen_positions = min(int(config.total_steps) * int(config.batch_size), length)
  order = grain.MapDataset.range(length).seed(int(config.seed)).shuffle()
  seen = {order[i] for i in range(seen_positions)}
  out, i = [], 0
  while len(out) < num:
    if i not in seen:
      out.append(i)
    i += 1
  return out


def scenes(config, indices: list[int]) -> tuple[np.ndarray, np.ndarray]:
  """(images (n, R, R, 3) in [-1, 1], object masks (n, R, R, 1) in {0, 1})."""
  from jaxspatial.data.shapes import ShapesSource
  data = pipeline.with_defaults(config.data)
  src = ShapesSource(int(data.resolution), max_objects=int(data.max_objects),
                     num_objects=int(data.num_objects), seed=int(data.seed))
  ex = [src[i] for i in indices]
  x = imageio.from_uint8(np.stack([e["image"] for e in ex]))
  m = np.stack([e["masks"].max(axis=0) for e in ex]).astype(np.float32)[..., None]
  return x, m


def measure(model, images: np.ndarray, x: np.ndarray, masks: np.ndarray) -> dict[str, np.ndarray]:
  d = model.discriminator
  feats = jax.jit(lambda v, a: critic.feature_maps(d, v, a))
  dist = critic.feature_distance(feats(model.d_vars, jnp.asarray(images)),
                                 feats(model.d_vars, jnp.asarray(x)))
  l1 = np.abs(np.clip(images, -1, 1) - x).mean(-1, keepdims=True)
  return {"PSNR dB": projection.psnr(images, x),
          "masked L1": (l1 * masks).sum(axis=(1, 2, 3)) / masks.sum(axis=(1, 2, 3)),
          "critic dist": np.asarray(dist)}


def tune_each(model, p: projection.Projection, steps: int, loss: str) -> tuple[np.ndarray, float]:
  """PTI on every image alone (one generator copy each): (images, seconds)."""
  out, start = [], time.perf_counter()
  for i in cli.progress(range(len(p.ws)), desc="pti", unit="image"):
    one = projection.Projection(kind=p.kind, space=p.space, latent=p.latent[i:i + 1],
                                ws=p.ws[i:i + 1], noise=[m[i:i + 1] for m in p.noise],
                                target=p.target[i:i + 1])
    out.append(pti.pivotal_tuning(model, one, pti.PTIConfig(steps=steps, loss=loss)).image)
  return np.concatenate(out), time.perf_counter() - start


def main(argv=None) -> None:
  ap = argparse.ArgumentParser(prog="python -m jaxspatial.benchmarks.projection_real",
                               description=__doc__.split("\n\n")[0])
  ap.add_argument("--generator", required=True, help="the demo StyleGAN2 run (with its D)")
  ap.add_argument("--regressor", required=True, help="a regressor trained on that generator")
  ap.add_argument("--num", type=int, default=32, help="held-out scenes")
  ap.add_argument("--steps", type=int, default=1000, help="projection steps")
  ap.add_argument("--pti", type=int, default=100, help="PTI steps per image")
  ap.add_argument("--space", default="wplus", choices=projection.SPACES)
  ap.add_argument("--loss", default="critic", choices=projection.LOSSES)
  ap.add_argument("--out", required=True, help="folder for the picture")
  args = ap.parse_args(argv)
  import jaxspatial as js
  from jaxspatial import regressor
  model = js.load(args.generator)
  reg = regressor.load_regressor(args.regressor)
  indices = held_out_indices(model.config, args.num)
  x, masks = scenes(model.config, indices)
  print(f"held-out indices: {indices}")
  rows, pictures = [], {"target": x}
  t = time.perf_counter()
  ws0 = reg.invert(x)
  runs = {"regressor alone": (0, ws0), "projection from w_avg": (args.steps, None),
          "projection from regressor": (args.steps, ws0)}
  for name, (steps, init) in runs.items():
    start = time.perf_counter()
    with cli.progress(total=steps, desc=name, unit="step") as bar:
      p = model.project(x, steps=steps, space=args.space, loss=args.loss, init_ws=init,
                        callback=lambda i: bar.update(1))
    seconds = time.perf_counter() - start + (start - t if init is not None else 0.0)
    pictures[name] = p.image
    rows.append((name, steps, 0, seconds, measure(model, p.image, x, masks)))
    tuned, pti_s = tune_each(model, p, args.pti, args.loss)
    pictures[name + " + PTI"] = tuned
    rows.append((name + " + PTI", steps, args.pti, seconds + pti_s,
                 measure(model, tuned, x, masks)))
    t = time.perf_counter()
  print(f"{len(x)} scenes, space {args.space}, loss {args.loss}; mean ± 95% interval")
  print("| method | steps | PTI steps | wall s (all scenes) | PSNR dB ↑ | masked L1 ↓ | "
        "critic dist ↓ |")
  print("|---|---|---|---|---|---|---|")
  for name, steps, pti_steps, seconds, m in rows:
    cells = [f"{v.mean():.3f} ± {1.96 * v.std(ddof=1) / np.sqrt(len(v)):.3f}" for v in m.values()]
    print(f"| {name} | {steps} | {pti_steps} | {seconds:.0f} | " + " | ".join(cells) + " |")
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  show = min(8, len(x))
  tiles = np.concatenate([pictures[k][:show] for k in pictures])
  path = out / "projection_real.png"
  grid = imageio.to_uint8(tiles).repeat(3, axis=1).repeat(3, axis=2)
  Image.fromarray(imageio.grid(grid, cols=show)).save(path)
  print(f"wrote {path}: rows {', '.join(pictures)}; first {show} scenes")


if __name__ == "__main__":
  cli.run(main)
