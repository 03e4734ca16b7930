"""Speed of the embedded shapes data: ``python -m jaxspatial.bench shapes``.

:func:`bench_shapes` times rendering alone (one core, no grain) and the whole input pipeline
(:func:`jaxspatial.data.pipeline.make_iterator`: shuffle, batch, convert to float; default
in-process prefetch threads); ``jaxspatial.bench`` reports both.
"""

from __future__ import annotations

import time

from jaxspatial.benchmarks import no_flop_rate
from jaxspatial.data.pipeline import default_data_config, make_iterator
from jaxspatial.data.shapes import ShapesSource


def bench_shapes(resolution: int = 64, n: int = 2000, batch_size: int = 64) -> dict:
  """Images/s of shapes rendering and of the batched pipeline at ``resolution`` px.

  Returns ``{"resolution", "images", "batch_size", "render_images_per_s",
  "render_images_per_cpu_s", "pipeline_images_per_s"}``: ``n`` scenes are timed for each
  after a short warm-up; ``render_images_per_cpu_s`` divides by this process's CPU time, a
  steadier figure than wall time on a shared machine.
  """
  source = ShapesSource(resolution)
  for i in range(min(50, n)):
    source[i]
  start, cpu_start = time.perf_counter(), time.process_time()
  for i in range(n):
    source[i]
  render = n / (time.perf_counter() - start)
  render_cpu = n / (time.process_time() - cpu_start)

  cfg = default_data_config()
  cfg.resolution = resolution
  it = make_iterator(cfg, global_batch_size=batch_size, seed=0, process_index=0, process_count=1)
  next(it)
  steps = max(1, n // batch_size)
  start = time.perf_counter()
  for _ in range(steps):
    next(it)
  pipeline = steps * batch_size / (time.perf_counter() - start)
  it.close()
  return {"resolution": resolution, "images": n, "batch_size": batch_size,
          "render_images_per_s": round(render, 1), "render_images_per_cpu_s": round(render_cpu, 1),
          "pipeline_images_per_s": round(pipeline, 1),
          **no_flop_rate("shapes and the input pipeline render and batch on the host (numpy "
                         "and grain, no XLA program): images/s is their measure, a FLOP rate "
                         "would be invented")}

