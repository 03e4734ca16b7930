r"""How often ``drag`` warns of a uniform handle, and whether the warning finds the drags that
moved nothing (issue 36: "converged" was printed while the image had not changed).

    python -m jaxspatial.bench drag-report --checkpoint runs/demo --num 30

Drag ``i`` starts from the image of latent seed ``i`` (truncation 1, constant noise); its handle
is a uniformly random pixel at least 2 px from the border and its target the handle moved by
``--distance`` (a random length in that range, in px, and a random direction), clipped into the
image. One :class:`~jaxspatial.edit.drag.Dragger` serves every drag (compiled once). A drag is
*no-op* when the image within the report's radius of the drag changed by less than
:data:`~jaxspatial.edit.drag.UNCHANGED` (``report.unchanged``); the uniform warning is decided
on the image before the drag, so comparing the two says whether the warning predicts the
outcome. Prints one row per drag, then the counts.
"""

from __future__ import annotations

import time

import numpy as np

from jaxspatial import cli, errors


def measure(model, num: int, seed: int, distance: tuple[float, float], max_steps: int
            ) -> list[dict]:
  """One row per drag: handle, target, steps, converged and the :func:`report` fields."""
  from jaxspatial.edit import drag as drag_lib
  res = model.resolution
  rng = np.random.default_rng(seed)
  dragger = drag_lib.Dragger(model, drag_lib.DragConfig(max_steps=max_steps), max_points=1)
  rows = []
  for i in cli.progress(range(num), desc="drag-report", unit="drag"):
    ws = np.repeat(model.mapping(model.sample_z(i, 1))[:, None], model.num_ws, axis=1)
    before = model.synthesize(ws)[0]
    handle = rng.integers(2, res - 2, size=2).astype(np.float32)
    angle, length = rng.uniform(0, 2 * np.pi), rng.uniform(*distance)
    target = np.clip(np.round(handle + length * np.array([np.sin(angle), np.cos(angle)])),
                     0, res - 1).astype(np.float32)
    start = time.perf_counter()
    run = dragger.start(ws, handle[None], target[None])
    for _ in range(max_steps):
      if run.step().done:
        break
    result = run.result()
    r = drag_lib.report(before, result.image, handle[None], target[None], result.handles)[0]
    rows.append({"seed": i, "handle": f"{handle[0]:g},{handle[1]:g}",
                 "target": f"{target[0]:g},{target[1]:g}", "steps": result.steps,
                 "converged": result.converged, "asked": round(r.asked, 1),
                 "tracked": round(r.tracked, 1), "content": round(r.content, 1),
                 "match_error": round(r.match_error, 3), "change": round(r.change, 4),
                 "contrast": round(r.contrast, 4), "uniform": r.uniform, "no_op": r.unchanged,
                 "seconds": round(time.perf_counter() - start, 1)})
  return rows


def summary(rows: list[dict]) -> dict:
  """Counts: drags, warnings, no-ops, their overlap, "converged" among the no-ops, and the
  converged drags whose content moved less than half the asked distance (``drag``'s third
  warning: not uniform, not a no-op)."""
  warn = np.array([r["uniform"] for r in rows])
  no_op = np.array([r["no_op"] for r in rows])
  converged = np.array([r["converged"] for r in rows])
  short = np.array([r["content"] < r["asked"] / 2 for r in rows])
  return {"drags": len(rows), "uniform_warnings": int(warn.sum()), "no_ops": int(no_op.sum()),
          "warned_no_ops": int((warn & no_op).sum()),
          "warned_but_moved": int((warn & ~no_op).sum()),
          "unwarned_no_ops": int((~warn & no_op).sum()),
          "converged": int(converged.sum()), "converged_no_ops": int((converged & no_op).sum()),
          "converged_content_short": int((converged & ~warn & ~no_op & short).sum())}


def main(argv: list[str] | None = None, prog: str = "python -m jaxspatial.bench drag-report"):
  from jaxspatial.benchmarks import no_flop_rate, print_table
  p = cli.ArgumentParser(prog=prog, description=__doc__.strip().partition("\n\n")[0])
  p.add_checkpoint("a stylegan2 model directory (the demo run)")
  p.add_argument("--num", type=int, default=30, help="drags (default 30)")
  p.add_argument("--seed", type=int, default=0, help="seed of the handle and target draws")
  p.add_argument("--distance", type=float, nargs=2, default=(4.0, 8.0), metavar=("MIN", "MAX"),
                 help="drag length range in px (default 4 8)")
  p.add_argument("--steps", type=int, default=100, help="maximum steps per drag (default 100)")
  args = p.parse_args(argv)
  import jaxspatial as js
  model = js.load(args.checkpoint, args.step)
  if model.kind != "stylegan2":
    raise errors.UserError(f"{args.checkpoint} holds a {model.kind} model; this measures stylegan2")
  rows = measure(model, args.num, args.seed, tuple(args.distance), args.steps)
  na = no_flop_rate("drag-report counts drag outcomes (steps, warnings), it times nothing: "
                    "a drag step's FLOP rate is in bench projection and bench alignment")
  print_table([{**r, **na} for r in rows])
  print_table([{**summary(rows), **na}])
