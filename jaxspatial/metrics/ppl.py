"""Perceptual path length (Karras et al. 2019/2020), the StyleGAN2 definition.

For endpoint latents (a0, a1) and t drawn per pair::

    PPL = E_t [ LPIPS_vgg(G(interp(a0, a1, t)), G(interp(a0, a1, t + eps))) / eps^2 ]

with ``eps = 1e-4``; ``interp`` is ``lerp`` in W and ``slerp`` in Z (on the last axis, as
stylegan2's ``slerp``); ``t = 0`` for ``sampling="end"`` (path endpoints, the StyleGAN2 paper's
PPL) and ``t ~ U(0, 1)`` for ``sampling="full"``. Images are optionally centre-cropped
(``crop=True``: rows 3/8..7/8, columns 2/8..6/8, stylegan2's face crop), box-downsampled to 256
when larger, and the mean is taken over the distances between the 1st ('lower') and 99th
('higher') percentiles.

Written against two callables, so it does not depend on any model code:
``sample_fn(seed, n) -> (a0, a1)``, the endpoints in the interpolation space (for W: the
mapped ``w`` of two fresh ``z``; for Z: two fresh ``z``), and
``generate_fn(latents) -> images`` (n, H, W, 3) in [-1, 1] for points of that space.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from jaxspatial import cli
from jaxspatial.nets import features

SPACES = ("w", "z")
SAMPLINGS = ("end", "full")


def slerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
  """Spherical interpolation of the unit-normalised a, b on the last axis; t broadcasts.

  ``slerp = a cos(t theta) + c sin(t theta)``, ``theta = acos(a.b)``, c = unit(b - (a.b) a).
  """
  a = a / np.linalg.norm(a, axis=-1, keepdims=True)
  b = b / np.linalg.norm(b, axis=-1, keepdims=True)
  d = np.sum(a * b, axis=-1, keepdims=True)
  p = t * np.arccos(np.clip(d, -1.0, 1.0))
  c = b - d * a
  c = c / np.linalg.norm(c, axis=-1, keepdims=True)
  out = a * np.cos(p) + c * np.sin(p)
  return out / np.linalg.norm(out, axis=-1, keepdims=True)


def lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
  """``a + t (b - a)``."""
  return a + t * (b - a)


def prepare_for_lpips(images: np.ndarray, crop: bool) -> np.ndarray:
  """Optional stylegan2 centre crop, then box-downsample by ``H // 256`` when that is > 1."""
  if crop:
    c = images.shape[1] // 8
    images = images[:, c * 3:c * 7, c * 2:c * 6]
  factor = images.shape[1] // 256
  if factor > 1:
    n, h, w, ch = images.shape
    images = images[:, :h // factor * factor, :w // factor * factor]
    images = images.reshape(n, h // factor, factor, w // factor, factor, ch).mean(axis=(2, 4))
  return images


def filtered_mean(dist: np.ndarray) -> float:
  """Mean over ``[percentile_1 ('lower'), percentile_99 ('higher')]`` as stylegan2-ada."""
  lo = np.percentile(dist, 1, method="lower")
  hi = np.percentile(dist, 99, method="higher")
  return float(dist[(dist >= lo) & (dist <= hi)].mean())


def path_distances(sample_fn: Callable[[int, int], tuple[Any, Any]],
                   generate_fn: Callable[[np.ndarray], Any], *, num_samples: int,
                   batch_size: int = 16, space: str = "w", sampling: str = "end",
                   epsilon: float = 1e-4, crop: bool = False, seed: int = 0,
                   lpips_fn: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
                   ) -> np.ndarray:
  """The (num_samples,) per-pair values ``LPIPS(G(l_t), G(l_{t+eps})) / eps^2``.

  Batch b uses ``sample_fn(seed + b, n)`` and t from ``default_rng([seed, b])``.
  ``lpips_fn(x, y) -> (n,)`` defaults to :func:`jaxspatial.metrics.lpips` with VGG.
  """
  if space not in SPACES:
    raise ValueError(f"space must be one of {SPACES}, got {space!r}")
  if sampling not in SAMPLINGS:
    raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
  lpips_fn = lpips_fn or (lambda x, y: features.lpips(x, y, "vgg"))
  interp = lerp if space == "w" else slerp
  out = []
  with cli.progress(total=num_samples, desc=f"ppl ({space}, {sampling})", unit="pair") as bar:
    for b, start in enumerate(range(0, num_samples, batch_size)):
      n = min(batch_size, num_samples - start)
      a0, a1 = (np.asarray(a, np.float64) for a in sample_fn(seed + b, n))
      t = np.random.default_rng([seed, b]).uniform(size=n) if sampling == "full" else np.zeros(n)
      t = t.reshape((n,) + (1,) * (a0.ndim - 1))
      lat = np.concatenate([interp(a0, a1, t), interp(a0, a1, t + epsilon)]).astype(np.float32)
      images = prepare_for_lpips(np.asarray(generate_fn(lat), np.float32), crop)
      out.append(np.asarray(lpips_fn(images[:n], images[n:]), np.float64) / epsilon ** 2)
      bar.update(n)
  return np.concatenate(out)


def perceptual_path_length(sample_fn: Callable[[int, int], tuple[Any, Any]],
                           generate_fn: Callable[[np.ndarray], Any], *, num_samples: int = 50000,
                           **kwargs: Any) -> float:
  """PPL: :func:`filtered_mean` of :func:`path_distances` (same arguments)."""
  return filtered_mean(path_distances(sample_fn, generate_fn, num_samples=num_samples, **kwargs))
