"""Evaluate a generator checkpoint with standard metrics.

    python -m jaxspatial.evaluate --checkpoint runs/demo --metrics fid,kid,ppl,prdc --num 50000 \
        --out metrics.json
    python -m jaxspatial.evaluate --checkpoint models/ffhq --metrics fid \
        --data source=zip,path=/data/ffhq.zip,resolution=256

Metrics (:data:`jaxspatial.metrics.registry.METRICS`; each is ``fn(model, ctx) -> {name: value}``):

* ``fid`` / ``kid``: pytorch-fid Inception pool3; FID against the Gaussian of the real set,
  KID = unbiased cubic-kernel MMD^2 over subsets (stylegan2-ada). Generated images use
  ``noise="random"`` and ``--truncation``. Real statistics are cached per data spec under
  ``$JAXSPATIAL_HOME/stats/``.
* ``ppl``: perceptual path length (LPIPS VGG, eps 1e-4, ``--ppl-space w|z``,
  ``--ppl-sampling end|full``, ``--ppl-crop``), reported as ``ppl_<space><sampling>``.
* ``prdc``: precision/recall/density/coverage (k = 5) on VGG16 fc2 features of
  ``--num-prdc`` generated and real images.
* ``critic_fd``: an FID proxy that needs no downloaded weights: the Fréchet distance in the
  feature space of a trained discriminator given by ``--critic DIR``
  (:mod:`jaxspatial.metrics.critic`), between ``--num`` generated and real images; also
  ``critic_logit_fake``/``critic_logit_real``, the critic's mean logits.
* ``ppl_critic``: ``ppl`` with the ``--critic``'s features standing in for LPIPS (LPIPS's form
  with uniform channel weights on its unit-normalised block features; no downloaded weights),
  reported as ``ppl_critic_<space><sampling>``; its values are not on LPIPS's scale.
* ``distortion`` (SSN) and ``comove`` (SpatialGAN): see docs/ssn.md and docs/spatialgan.md.

The real data is the checkpoint config's ``data`` section with ``--data key=value,...``
overrides. Each metric needs converted network weights (``python -m jaxspatial.convert_torch
--net ...``); a metric that cannot run reports why in the JSON's ``errors`` and the command
exits with status 2 after writing the results of the others.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

from jaxspatial import cli
from jaxspatial.errors import UserError
from jaxspatial.metrics import ppl, registry


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
  p = cli.ArgumentParser(
      prog="python -m jaxspatial.evaluate",
      description="Evaluate a checkpoint with FID, KID, PPL, PRDC, SSN distortion or the "
                  "SpatialGAN co-move ratio. The metric networks' "
                  "weights must be converted once with `python -m jaxspatial.convert_torch "
                  "--net inception|vgg16|lpips-vgg ...` into $JAXSPATIAL_HOME.")
  p.add_checkpoint("checkpoint directory (train/convert_torch)")
  p.add_argument("--metrics", default="fid", help=f"comma-separated, from: {', '.join(registry.METRICS)}")
  p.add_argument("--data", help="real data as key=value overrides of the checkpoint config's "
                 "data section, e.g. source=zip,path=/data/ffhq.zip,resolution=256")
  p.add_argument("--num", type=int, default=50000,
                 help="generated images for fid/kid, samples for ppl (default 50000)")
  p.add_argument("--num-real", type=int, help="real images for fid/kid (default: --num; "
                 "capped at the dataset size)")
  p.add_argument("--num-prdc", type=int, default=10000,
                 help="generated and real images for prdc (default 10000)")
  p.add_argument("--batch-size", type=int, default=32)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--truncation", type=float, default=1.0, help="for fid/kid/prdc images")
  p.add_argument("--ppl-space", choices=ppl.SPACES, default="w")
  p.add_argument("--ppl-sampling", choices=ppl.SAMPLINGS, default="end")
  p.add_argument("--ppl-crop", action="store_true", help="stylegan2's centre (face) crop")
  p.add_argument("--ppl-epsilon", type=float, default=1e-4)
  p.add_argument("--kid-subsets", type=int, default=100)
  p.add_argument("--kid-subset-size", type=int, default=1000)
  p.add_argument("--prdc-k", type=int, default=5)
  p.add_argument("--num-distortion", type=int, default=256,
                 help="samples for distortion (each costs 1 + blocks generations)")
  p.add_argument("--num-comove", type=int, default=256, help="heatmap edits for comove")
  p.add_argument("--critic", help="for critic_fd: a trained checkpoint whose discriminator "
                 "supplies the features, e.g. the demo StyleGAN2 run")
  p.add_argument("--out", help="write the results as JSON here")
  return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
  args = parse_args(argv)
  names = registry.metric_names(args.metrics)
  for flag in ("num", "num_prdc", "batch_size"):
    if getattr(args, flag) < 1:
      raise UserError(f"--{flag.replace('_', '-')} must be positive")
  import jaxspatial as js
  model = js.load(args.checkpoint, step=args.step)
  if not hasattr(model, "sample_z"):
    raise UserError(f"{args.checkpoint} holds a {model.kind} model, not a generator")
  ctx = registry.Context(
      data_cfg=registry.data_config(model.config, args.data, getattr(model, "resolution", None)),
      num=args.num, num_real=args.num_real or args.num, num_prdc=args.num_prdc,
      batch_size=args.batch_size, seed=args.seed, truncation=args.truncation,
      ppl_space=args.ppl_space, ppl_sampling=args.ppl_sampling, ppl_crop=args.ppl_crop,
      ppl_epsilon=args.ppl_epsilon, kid_subsets=args.kid_subsets,
      kid_subset_size=args.kid_subset_size, prdc_k=args.prdc_k,
      num_distortion=args.num_distortion, num_comove=args.num_comove, critic=args.critic,
      metric_names=names)
  start = time.time()
  # An outer progress: with output redirected its lines also cover the stretches that no
  # metric's own progress does (PRDC's neighbour search, loading networks, compiling).
  with cli.progress(desc=f"evaluate {','.join(names)}"):
    results, errors = registry.evaluate(model, ctx)
  report = {
      "checkpoint": str(pathlib.Path(args.checkpoint).absolute()), "step": model.step,
      "kind": model.kind, "num": args.num, "seed": args.seed, "truncation": args.truncation,
      "data": ctx.data_cfg.to_dict() if ctx.data_cfg is not None else None,
      "metrics": results, "errors": errors, "seconds": round(time.time() - start, 1),
  }
  if args.out:
    out = pathlib.Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
  for key, value in results.items():
    print(f"{key}: {value:.6g}")
  if errors:     # one line, as every command's errors; the report (--out) lists them too
    raise UserError(f"{len(errors)} of {len(names)} metric(s) failed: " + "; ".join(
        f"{name}: {problem}" for name, problem in errors.items()))


if __name__ == "__main__":
  cli.run(main)
