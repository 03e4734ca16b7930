"""Layer-level benchmarks: each fast implementation in :mod:`jaxspatial.models.layers` against
its reference implementation next to it, forward and gradients. ``GFLOP/s`` is each
implementation's own FLOPs (XLA's count: the reference may do more arithmetic for the same
result) over its summed forward and gradient times.

    python -m jaxspatial.bench fir                # FIR resampling: shifted slices vs depthwise conv
    python -m jaxspatial.bench conv_transpose     # up-sampling conv: sub-pixel phases vs lhs_dilation
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxspatial.benchmarks import flop_rate, time_with_flops
from jaxspatial.models import layers


def _ms(seconds: float) -> float:
  return float(f"{seconds * 1e3:.4g}")


def bench_fir(batch: int = 16, size: int = 32, channels: int = 64) -> list[dict]:
  """The [1,3,3,1] resampling of the demo's 32 px layers, forward and gradient:
  ``layers.upfirdn2d`` (shifted slices) against the same filter as a depthwise convolution."""
  x = jax.random.normal(jax.random.key(0), (batch, size, size, channels))
  cases = {"blur (G up-conv)": dict(pad=(2, 1)), "2x down (D)": dict(down=2, pad=(1, 1)),
           "2x up": dict(up=2, pad=(2, 1))}
  rows = []
  for case, kw in cases.items():
    kernel = layers.fir_kernel(gain=4.0 if kw.get("up") else 1.0)
    timings, flops = {}, {}
    for impl, f in (("depthwise conv", layers.upfirdn2d_reference), ("shifted slices", layers.upfirdn2d)):
      fwd = jax.jit(lambda x, f=f: f(x, kernel, **kw))
      grad = jax.jit(jax.grad(lambda x, f=f: jnp.sum(jnp.sin(f(x, kernel, **kw)))))
      (t_fwd, f_fwd), (t_grad, f_grad) = (time_with_flops(fn, x, iters=10) for fn in (fwd, grad))
      timings[impl], flops[impl] = (t_fwd, t_grad), f_fwd + f_grad
    base = timings["depthwise conv"]
    for impl, (t_fwd, t_grad) in timings.items():
      rows.append({"bench": f"{case} {tuple(x.shape)}", "impl": impl,
                   "fwd_ms": _ms(t_fwd), "grad_ms": _ms(t_grad),
                   "fwd_speedup": round(base[0] / t_fwd, 1),
                   "grad_speedup": round(base[1] / t_grad, 1),
                   **flop_rate(flops[impl], t_fwd + t_grad)})
  return rows


def bench_conv_transpose(batch: int = 16) -> list[dict]:
  """The demo generator's 3x3 up-sampling convs (8->16 and 16->32 px): forward and the
  gradients w.r.t. weight and input, sub-pixel phases against ``lhs_dilation``."""
  rows = []
  for size, cin, cout in ((8, 64, 64), (16, 64, 32)):
    x = jax.random.normal(jax.random.key(0), (batch, size, size, cin))
    w = jax.random.normal(jax.random.key(1), (3, 3, cin, cout))
    timings, flops = {}, {}
    for impl, f in (("lhs_dilation", layers.conv_transpose_2x_reference),
                    ("sub-pixel phases", layers.conv_transpose_2x)):
      loss = lambda x, w, f=f: jnp.sum(jnp.sin(f(x, w)))
      measured = [time_with_flops(jax.jit(fn), x, w, iters=10)
                  for fn in (f, jax.grad(loss, 1), jax.grad(loss, 0))]
      timings[impl], flops[impl] = [t for t, _ in measured], sum(n for _, n in measured)
    base = timings["lhs_dilation"]
    for impl, t in timings.items():
      rows.append({"bench": f"up-conv {tuple(x.shape)} -> {cout} ch", "impl": impl,
                   "fwd_ms": _ms(t[0]), "grad_w_ms": _ms(t[1]), "grad_x_ms": _ms(t[2]),
                   "grad_w_speedup": round(base[1] / t[1], 1),
                   **flop_rate(flops[impl], sum(t))})
  return rows
