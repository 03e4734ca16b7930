"""Unit tests of the StyleGAN2 building blocks against direct numpy definitions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxspatial.models import layers


def upfirdn_numpy(x, k, up, down, pad):
  """Literal SPEC.md definition, one channel at a time: zero-stuff, pad, true conv, keep."""
  n, h, w, c = x.shape
  p0, p1 = pad
  z = np.zeros((n, h * up, w * up, c), x.dtype)
  z[:, ::up, ::up] = x
  z = np.pad(z, ((0, 0), (p0, p1), (p0, p1), (0, 0)))
  kf = k[::-1, ::-1]
  kh, kw = k.shape
  oh, ow = z.shape[1] - kh + 1, z.shape[2] - kw + 1
  out = np.zeros((n, oh, ow, c), np.float64)
  for i in range(kh):
    for j in range(kw):
      out += kf[i, j] * z[:, i:i + oh, j:j + ow]
  return out[:, ::down, ::down]


@pytest.mark.parametrize("up,down,pad,size", [(1, 1, (1, 1), 8), (2, 1, (2, 1), 7),
                                              (1, 2, (1, 1), 9), (1, 2, (2, 2), 8),
                                              (2, 1, (1, 2), 5), (1, 1, (0, 0), 6)])
def test_upfirdn2d_matches_definition(up, down, pad, size):
  x = np.random.default_rng(0).standard_normal((2, size, size, 3)).astype(np.float32)
  k = layers.fir_kernel(gain=up * up)
  got = np.asarray(layers.upfirdn2d(jnp.asarray(x), k, up=up, down=down, pad=pad))
  ref = upfirdn_numpy(x, k, up, down, pad)
  out = (size * up + sum(pad) - 4) // down + 1
  assert got.shape == ref.shape == (2, out, out, 3)
  np.testing.assert_allclose(got, ref, atol=1e-5)


def test_upfirdn2d_asymmetric_kernel_is_a_true_convolution():
  x = np.zeros((1, 5, 5, 1), np.float32)
  x[0, 2, 2, 0] = 1.0
  k = np.arange(1, 10, dtype=np.float32).reshape(3, 3)
  got = np.asarray(layers.upfirdn2d(jnp.asarray(x), k, pad=(1, 1)))[0, 1:4, 1:4, 0]
  np.testing.assert_allclose(got, k)  # an impulse convolved with k reproduces k unflipped


@pytest.mark.parametrize("up", [False, True])
@pytest.mark.parametrize("demodulate", [False, True])
def test_modulated_conv_equals_per_sample_weights(up, demodulate):
  """Activation form == the paper's per-sample modulated, demodulated weights."""
  rng = np.random.default_rng(1)
  n, h, cin, cout, k = 3, 6, 5, 4, 3
  x = rng.standard_normal((n, h, h, cin)).astype(np.float32)
  w = rng.standard_normal((k, k, cin, cout)).astype(np.float32) / np.sqrt(cin * k * k)
  s = rng.standard_normal((n, cin)).astype(np.float32)
  got = layers.modulated_conv(jnp.asarray(x), jnp.asarray(w), jnp.asarray(s),
                           demodulate=demodulate, up=up)
  refs = []
  for b in range(n):
    wb = w * s[b][None, None, :, None]
    if demodulate:
      wb = wb / np.sqrt((wb ** 2).sum(axis=(0, 1, 2), keepdims=True) + 1e-8)
    refs.append(layers.modulated_conv(jnp.asarray(x[b:b + 1]), jnp.asarray(wb),
                                   jnp.ones((1, cin)), demodulate=False, up=up))
  np.testing.assert_allclose(np.asarray(got), np.concatenate(refs), atol=1e-5, rtol=1e-5)


def test_minibatch_stddev_strided_groups():
  rng = np.random.default_rng(2)
  x = rng.standard_normal((8, 4, 4, 6)).astype(np.float32)
  y = np.asarray(layers.minibatch_stddev(jnp.asarray(x), group_size=4))
  assert y.shape == (8, 4, 4, 7)
  np.testing.assert_array_equal(y[..., :6], x)
  for n in range(8):                      # sample n belongs to column m = n mod 2
    members = x[n % 2::2]
    ref = np.sqrt(members.var(axis=0) + 1e-8).mean()
    np.testing.assert_allclose(y[n, :, :, 6], ref, rtol=1e-5)
  y1 = np.asarray(layers.minibatch_stddev(jnp.asarray(x[:1]), group_size=4))
  np.testing.assert_allclose(y1[..., -1], 1e-4, rtol=1e-4)
  with pytest.raises(ValueError, match="divisible"):
    layers.minibatch_stddev(jnp.asarray(x[:6]), group_size=4)


def test_equal_dense_runtime_scaling():
  layer = layers.EqualDense(3, lr_mul=0.01, activate=False)
  v = layer.init(jax.random.key(0), jnp.ones((1, 4)))
  w = v["params"]["weight"]
  assert float(jnp.std(w)) > 10        # stored N(0,1)/lr_mul
  x = jnp.arange(8.0).reshape(2, 4)
  b = v["params"]["bias"]
  np.testing.assert_allclose(layer.apply(v, x), x @ (w * 0.01 / 2.0) + b * 0.01, rtol=1e-5)


@pytest.mark.parametrize("up,down,pad,shape", [(1, 1, (2, 1), (2, 8, 8, 5)),
                                               (2, 1, (2, 1), (2, 8, 8, 5)),
                                               (1, 2, (1, 1), (2, 8, 8, 5)),
                                               (1, 2, (2, 2), (1, 9, 6, 2)),
                                               (2, 2, (3, 0), (1, 5, 7, 2)),
                                               (1, 1, (0, 0), (1, 6, 5, 2))])
def test_upfirdn2d_equals_the_depthwise_conv_reference(up, down, pad, shape):
  """Values, gradient and second derivative (R1 differentiates D's gradient) of the shifted
  slices with their adjoint-filter gradient equal autodiff of the depthwise convolution."""
  from jaxspatial.models import layers
  rng = np.random.default_rng(2)
  x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  k = layers.fir_kernel(gain=up * up) * np.arange(1, 5, dtype=np.float32)[:, None]  # asymmetric
  fs = [lambda x: layers.upfirdn2d(x, k, up=up, down=down, pad=pad),
        lambda x: layers.upfirdn2d_reference(x, k, up, down, pad)]
  y = [f(x) for f in fs]
  np.testing.assert_allclose(np.asarray(y[0]), np.asarray(y[1]), atol=1e-5)
  probe = jnp.asarray(rng.standard_normal(y[0].shape), jnp.float32)
  grads = [jax.grad(lambda x, f=f: jnp.sum(f(x) * probe))(x) for f in fs]
  np.testing.assert_allclose(np.asarray(grads[0]), np.asarray(grads[1]), atol=1e-4)
  second = [jax.grad(lambda x, f=f: jnp.sum(jnp.square(
      jax.grad(lambda u: jnp.sum(f(u) ** 2))(x))))(x) for f in fs]
  np.testing.assert_allclose(np.asarray(second[0]), np.asarray(second[1]), rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("k,shape", [(3, (2, 5, 7, 3)), (1, (1, 4, 4, 2)), (2, (1, 3, 4, 2)),
                                     (4, (2, 4, 3, 3))])
def test_conv_transpose_2x_equals_the_dilated_reference(k, shape):
  """Values and both gradients of the sub-pixel form equal the zero-stuffed convolution."""
  from jaxspatial.models import layers
  rng = np.random.default_rng(k)
  x = jnp.asarray(rng.standard_normal(shape), jnp.float32)
  w = jnp.asarray(rng.standard_normal((k, k, shape[-1], 4)), jnp.float32)
  y = layers.conv_transpose_2x(x, w)
  assert y.shape == (shape[0], 2 * shape[1] + k - 2, 2 * shape[2] + k - 2, 4)
  np.testing.assert_allclose(np.asarray(y), np.asarray(layers.conv_transpose_2x_reference(x, w)),
                             atol=1e-5)
  probe = jnp.asarray(rng.standard_normal(y.shape), jnp.float32)
  grads = [jax.grad(lambda x, w: jnp.sum(f(x, w) * probe), (0, 1))(x, w)
           for f in (layers.conv_transpose_2x, layers.conv_transpose_2x_reference)]
  for a, b in zip(*grads):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-4)


@pytest.mark.slow
def test_bench_conv_transpose_table():
  from jaxspatial.benchmarks import layers as bench
  rows = bench.bench_conv_transpose(batch=1)
  assert [r["impl"] for r in rows] == ["lhs_dilation", "sub-pixel phases"] * 2
  assert all({"bench", "fwd_ms", "grad_w_ms", "grad_x_ms", "grad_w_speedup"} <= set(r)
             for r in rows)


@pytest.mark.slow
def test_bench_fir_table():
  from jaxspatial.benchmarks import layers as bench
  rows = bench.bench_fir(batch=1, size=8, channels=2)
  assert {r["impl"] for r in rows} == {"depthwise conv", "shifted slices"} and len(rows) == 6
  assert all({"bench", "fwd_ms", "grad_ms", "fwd_speedup", "grad_speedup"} <= set(r)
             for r in rows)
