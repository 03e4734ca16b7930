"""Public feature functions: Inception pool3, VGG16 fc2 and LPIPS on host images.

Images are NHWC float in [-1, 1], any size, numpy or jax arrays. Each function reads the
converted weights from ``$JAXSPATIAL_HOME`` (:func:`jaxspatial.nets.weights.load_params`),
places them replicated on a ``("data",)`` mesh once, and runs fixed-size batches sharded over
the mesh (``NamedSharding(mesh, P("data"))``): the batch size is rounded up to a multiple of the
device count, the last batch is padded by repeating its final image and the padding is dropped,
so every call compiles once per input shape. Results come back as numpy arrays.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from jaxspatial.nets import inception, lpips_net, vgg
from jaxspatial.nets.weights import load_params

DATA_AXIS = "data"


def data_mesh(devices: list[jax.Device] | None = None) -> Mesh:
  """A 1-D ``("data",)`` mesh over ``devices`` (default: this process's devices, which in a
  single process are all of them; each process of a multi-host job extracts its own images)."""
  devices = list(devices) if devices is not None else jax.local_devices()
  return jax.make_mesh((len(devices),), (DATA_AXIS,), axis_types=(AxisType.Auto,),
                       devices=devices)


@functools.cache
def _default_mesh() -> Mesh:
  return data_mesh()


_REPLICATED: dict[tuple[int, Mesh], tuple[Any, Any]] = {}


def _replicate(params: Any, mesh: Mesh) -> Any:
  """``params`` copied to every device of ``mesh`` once (cached by identity, a few entries)."""
  key = (id(params), mesh)
  if key not in _REPLICATED:
    if len(_REPLICATED) >= 4:
      _REPLICATED.pop(next(iter(_REPLICATED)))
    _REPLICATED[key] = (params, jax.device_put(params, NamedSharding(mesh, P())))
  return _REPLICATED[key][1]


def _as_images(images: Any, name: str = "images") -> np.ndarray:
  """(n, H, W, 3|1) -> float32 (n, H, W, 3); grey images are repeated over RGB."""
  x = np.asarray(images, dtype=np.float32)
  if x.ndim != 4 or x.shape[-1] not in (1, 3):
    raise ValueError(f"{name} must be NHWC with 1 or 3 channels, got shape {x.shape}")
  return np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x


def run_batched(fn: Callable[..., jax.Array], params: Any, arrays: tuple[np.ndarray, ...], *,
                batch_size: int, mesh: Mesh | None) -> np.ndarray:
  """``concat_b fn(params, *[a[b] for a in arrays])`` over batches sharded on ``mesh``.

  ``fn`` is a jitted ``(params, *batch) -> (B, ...)``. Every array shares the leading size n;
  batches have the fixed size ``B = ceil(batch_size / D) * D`` (D = devices), the last one
  padded with copies of its final row. Returns the (n, ...) host result.
  """
  mesh = mesh if mesh is not None else _default_mesh()
  n = arrays[0].shape[0]
  d = mesh.devices.size
  b = max(d, -(-min(batch_size, max(n, 1)) // d) * d)
  params = _replicate(params, mesh)
  sharding = NamedSharding(mesh, P(DATA_AXIS))
  outs = []
  for start in range(0, n, b):
    chunk = [a[start:start + b] for a in arrays]
    valid = chunk[0].shape[0]
    if valid < b:
      chunk = [np.concatenate([c, np.repeat(c[-1:], b - valid, axis=0)]) for c in chunk]
    out = fn(params, *[jax.device_put(c, sharding) for c in chunk])
    outs.append(np.asarray(out)[:valid])
  return np.concatenate(outs) if outs else np.zeros((0,), np.float32)


@jax.jit
def _inception_apply(params, images: jax.Array) -> jax.Array:
  return inception.FIDInceptionV3().apply({"params": params}, images)


_inception_preprocess = jax.jit(inception.preprocess)


def _inception_fn(params, images: jax.Array) -> jax.Array:
  # Two jits: the network compiles once at 299x299 whatever the input size.
  return _inception_apply(params, _inception_preprocess(images))


def inception_features(images: Any, *, batch_size: int = 64,
                       mesh: Mesh | None = None) -> np.ndarray:
  """pytorch-fid pool3 features (n, 2048) of images (n, H, W, 3) in [-1, 1].

  Bilinear resize to 299 (half-pixel, no antialias) as pytorch-fid, then FID InceptionV3.
  """
  x = _as_images(images)
  out = run_batched(_inception_fn, load_params("inception"), (x,), batch_size=batch_size, mesh=mesh)
  return out.reshape(x.shape[0], inception.FEATURE_DIM)


@jax.jit
def _vgg16_fn(params, images: jax.Array) -> jax.Array:
  return vgg.VGG16().apply({"params": params}, vgg.preprocess(images))


def vgg16_features(images: Any, *, batch_size: int = 64, mesh: Mesh | None = None) -> np.ndarray:
  """torchvision VGG16 fc2 pre-ReLU features (n, 4096) of images (n, H, W, 3) in [-1, 1].

  Bilinear resize to 224 (half-pixel, no antialias), ImageNet normalisation of ``(x+1)/2``.
  """
  x = _as_images(images)
  out = run_batched(_vgg16_fn, load_params("vgg16"), (x,), batch_size=batch_size, mesh=mesh)
  return out.reshape(x.shape[0], vgg.FEATURE_DIM)


@functools.partial(jax.jit, static_argnames=("net", "spatial"))
def _lpips_fn(params, x: jax.Array, y: jax.Array, *, net: str, spatial: bool) -> jax.Array:
  return lpips_net.lpips_distance(params, x, y, net, spatial)


def _check_lpips_net(net: str) -> None:
  if net not in lpips_net.NETS:
    raise ValueError(f"unknown LPIPS net {net!r}; expected one of {lpips_net.NETS}")


def lpips(x: Any, y: Any, net: str = "vgg", spatial: bool = False, *, batch_size: int = 32,
          mesh: Mesh | None = None) -> np.ndarray:
  """LPIPS v0.1 between image pairs (n, H, W, 3) in [-1, 1]: (n,), or (n, H, W) if ``spatial``.

  ``d(x, y) = sum_l mean_hw sum_c w^l_c (u^l_x - u^l_y)^2`` with unit-normalised backbone
  taps u^l (see :mod:`jaxspatial.nets.lpips_net`). Images are used at their own size.
  """
  _check_lpips_net(net)
  xa, ya = _as_images(x, "x"), _as_images(y, "y")
  if xa.shape != ya.shape:
    raise ValueError(f"x and y differ in shape: {xa.shape} vs {ya.shape}")
  fn = functools.partial(_lpips_fn, net=net, spatial=spatial)
  out = run_batched(fn, load_params(f"lpips-{net}"), (xa, ya), batch_size=batch_size, mesh=mesh)
  return out.reshape((xa.shape[0],) + ((xa.shape[1], xa.shape[2]) if spatial else ()))


def lpips_module(net: str = "vgg") -> tuple[lpips_net.LPIPS, Any]:
  """``(module, params)`` for LPIPS inside jitted, differentiated code.

  ``module.apply({"params": params}, x, y)`` (or ``lpips_distance(params, x, y, net)``) gives
  (n,) distances for (n, H, W, 3) images in [-1, 1]; params are jax arrays from
  ``$JAXSPATIAL_HOME/lpips-<net>.npz``.
  """
  _check_lpips_net(net)
  return lpips_net.LPIPS(net), load_params(f"lpips-{net}")

