"""Layer-level benchmarks: each fast implementation in :mod:`jaxspatial.models.layers` against
its reference implementation next to it, forward and gradients.

    python -m jaxspatial.bench fir                # FIR resampling: shifted slices vs depthwise conv
    python -m jaxspatial.bench conv_transpose     # up-sampling conv: sub-pixel phases vs lhs_dilation
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxspatial.benchmarks import time_call
from jaxspatial.models import layers


def bench_fir(batch: int = 16, size: int = 32, channels: int = 64) -> list[dict]:
  """The [1,3,3,1] resampling of the demo's 32 px layers, forward and gradient:
  ``layers.upfirdn2d`` (shifted slices) against the same filter as a depthwise convolution."""
  x = jax.random.normal(jax.random.key(0), (batch, size, size, channels))
  cases = {"blur (G up-conv)": dict(pad=(2, 1)), "2x down (D)": dict(down=2, pad=(1, 1)),
           "2x up": dict(up=2, pad=(2, 1))}
  rows = []
  for case, kw in cases.items():
    kernel = layers.fir_kernel(gain=4.0 if kw.get("up") else 1.0)
    timings = {}
    for impl, f in (("depthwise conv", layers.upfirdn2d_reference), ("shifted slices", layers.upfirdn2d)):
      fwd = jax.jit(lambda x, f=f: f(x, kernel, **kw))
      grad = jax.jit(jax.grad(lambda x, f=f: jnp.sum(jnp.sin(f(x, kernel, **kw)))))
      timings[impl] = (time_call(fwd, x, iters=10)[1], time_call(grad, x, iters=10)[1])
    base = timings["depthwise conv"]
    for impl, (t_fwd, t_grad) in timings.items():
      rows.append({"bench": f"{case} {tuple(x.shape)}", "impl": impl,
                   "fwd_ms": round(t_fwd * 1e3, 2), "grad_ms": round(t_grad * 1e3, 2),
                   "fwd_speedup": round(base[0] / t_fwd, 1),
                   "grad_speedup": round(base[1] / t_grad, 1)})
  return rows


def bench_conv_transpose(batch: int = 16) -> list[dict]:
  """The demo generator's 3x3 up-sampling convs (8->16 and 16->32 px): forward and the
  gradients w.r.t. weight and input, sub-pixel phases against ``lhs_dilation``."""
  rows = []
  for size, cin, cout in ((8, 64, 64), (16, 64, 32)):
    x = jax.random.normal(jax.random.key(0), (batch, size, size, cin))
    w = jax.random.normal(jax.random.key(1), (3, 3, cin, cout))
    timings = {}
    for impl, f in (("lhs_dilation", layers.conv_transpose_2x_reference),
                    ("sub-pixel phases", layers.conv_transpose_2x)):
      loss = lambda x, w, f=f: jnp.sum(jnp.sin(f(x, w)))
      timings[impl] = [time_call(jax.jit(fn), x, w, iters=10)[1]
                       for fn in (f, jax.grad(loss, 1), jax.grad(loss, 0))]
    base = timings["lhs_dilation"]
    for impl, t in timings.items():
      rows.append({"bench": f"up-conv {tuple(x.shape)} -> {cout} ch", "impl": impl,
                   "fwd_ms": round(t[0] * 1e3, 2), "grad_w_ms": round(t[1] * 1e3, 2),
                   "grad_x_ms": round(t[2] * 1e3, 2),
                   "grad_w_speedup": round(base[1] / t[1], 1)})
  return rows
