"""Throughput of the metric networks: ``python -m jaxspatial.bench inception``."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxspatial.benchmarks import compile_with_flops, flop_rate
from jaxspatial.nets import features, inception


def bench_inception(batch: int = 32, iters: int = 3, size: int = 256) -> dict:
  """Inception pool3 throughput on (batch, size, size, 3) images through the sharded path.

  Uses randomly initialised parameters (speed does not depend on the values), so it runs
  without converted weights. Returns ``{"bench", "images_per_s", "compile_s", "batch", "iters",
  "input_size", "devices", "platform"}``; ``compile_s`` is the first call minus the median
  of the timed calls.
  """
  module = inception.FIDInceptionV3()
  x299 = jnp.zeros((1, inception.INPUT_SIZE, inception.INPUT_SIZE, 3), jnp.float32)
  params = jax.jit(module.init)(jax.random.key(0), x299)["params"]
  images = np.random.default_rng(0).uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)

  def once() -> float:
    t0 = time.perf_counter()
    features.run_batched(features._inception_fn, params, (images,), batch_size=batch, mesh=None)
    return time.perf_counter() - t0

  first = once()
  times = [once() for _ in range(iters)]
  per_batch = float(np.median(times))
  # The FLOPs of the one batch's program (preprocessing and network; the transfers and the
  # host-side batching around it are in the time, not in the count).
  _, _, flops = compile_with_flops(jax.jit(features._inception_fn), params, jnp.asarray(images))
  return {
      "bench": f"Inception pool3 (pytorch-fid), {size}px -> 299",
      "images_per_s": round(batch / per_batch, 2),
      "compile_s": round(max(first - per_batch, 0.0), 1),
      "batch": batch,
      "iters": iters,
      "input_size": size,
      "devices": jax.device_count(),
      "platform": jax.devices()[0].platform,
      **flop_rate(flops, per_batch),
  }
