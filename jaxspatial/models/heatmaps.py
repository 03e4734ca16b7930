"""SpatialGAN heatmaps: sampling (EqGAN-SA constants) and the editable :class:`Heatmaps`.

A heatmap is a set of 2-D Gaussian "sub-heatmaps" (paper eq. 1) in normalised image
coordinates: ``(y, x)`` in [-1, 1] on the align-corners grid ``2 j / (R - 1) - 1``, so the
same description renders at any resolution ``R``. Sub-heatmap ``i`` is

    H_i(p) = a_i * exp(-|p - c_i|^2 / sigma_i) + 0.01,

with ``a_i = 1`` (0 once removed). Each centre belongs to a *level*; the generator feeds the
maps of level ``l`` to the synthesis blocks at ``4 * 2^l`` px (paper levels 0, 1, 2 = the
official code's ``b8``, ``b16``, ``b32`` heatmaps = DESIGN.md's levels 1-3).

Sampling (``genforce/eqgan-sa`` ``generate_heatmap_multi``):

* hierarchical (single object): level 0 has one centre ``c ~ N(0, 0.33^2)`` clamped to
  +-0.75, ``sigma = 0.5 (1 + U)``; level 1 two centres ``c + U(-0.4, 0.4)^2``,
  ``sigma = (U + 0.1) / 1.4``; level 2 four centres ``c + U(-0.8, 0.8)^2``,
  ``sigma = (U + 0.1) / 2`` (U ~ U[0, 1) drawn per sample and centre). The official code
  draws the level-0 sigma once per batch; here it is per sample, so a sample does not depend
  on the batch it is drawn in (nor on the device sharding).
* independent (Table IV "Non-Hie" ablation): the same centres and sigmas, but every centre is
  drawn like the level-0 one, with no parent.
* multi-object (indoor): ``n`` centres ``N(0, 0.5^2)`` clamped to +-0.75 (the paper's
  ``std = h/2`` in the units where the official code's single-object std is 0.33), all in
  level 0, ``sigma = sigma_scale (1 + U)``; the same maps drive every layer.

Sampling functions are pure and jittable (per-sample keys: row ``i`` does not depend on
``n``). :class:`Heatmaps` is an immutable pytree (leaves ``centers``, ``sigmas``,
``amplitudes`` with a leading batch axis; ``levels``/``parents`` static); edits return new
instances and keep numpy arrays numpy (API side) and jax arrays jax (inside ``jit``).
"""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

Array = Any  # np.ndarray or jax.Array

EPS = 0.01                        # floor added to every sub-heatmap
ROOT_STD, ROOT_CLAMP = 0.33, 0.75
LEVEL_COUNTS = (1, 2, 4)          # centres per level (4, 8, 16 px)
LEVEL_OFFSETS = (0.0, 0.4, 0.8)   # child = root + U(-a, a) per coordinate
LEVEL_SIGMA_DIV = (None, 1.4, 2.0)  # level >= 1: sigma = (U + 0.1) / div
MULTI_STD, MULTI_SIGMA_SCALE, MULTI_OBJECTS = 0.5, 0.5, 3
MODES = ("hierarchical", "independent", "multi")
MOVE_DISTANCE, MOVE_LIMIT = (0.2, 0.4), 0.9
"""The random move of the co-move ratio, the edit measures and the locality penalty: a root
centre moved by ``|p| ~ U(0.2, 0.4)`` heatmap units in a uniform direction, the moved centre
kept inside +-0.9 (:func:`move_offsets`)."""


def grid(resolution: int) -> np.ndarray:
  """Align-corners coordinates ``2 j / (R - 1) - 1``, shape (R,)."""
  if resolution < 2:
    raise ValueError(f"heatmap resolution must be >= 2, got {resolution}")
  return (2.0 * np.arange(resolution) / (resolution - 1) - 1.0).astype(np.float32)


def _xp(a):
  return jnp if isinstance(a, jax.Array) else np


@struct.dataclass
class Heatmaps:
  """A batch of Gaussian heatmaps: ``K`` centres per sample, grouped into levels.

  Attributes:
    centers: (N, K, 2) ``(y, x)`` in [-1, 1].
    sigmas: (N, K) the ``sigma`` of ``exp(-d^2 / sigma)`` (an area-like scale).
    amplitudes: (N, K) 1 for a present centre, 0 for a removed one.
    levels: static (K,) level of each centre (0 = coarsest, 4 px).
    parents: static (K,) index of the centre a centre was derived from, -1 for none.
  """
  centers: Array
  sigmas: Array
  amplitudes: Array
  levels: tuple[int, ...] = struct.field(pytree_node=False)
  parents: tuple[int, ...] = struct.field(pytree_node=False)

  # ------------------------------------------------------------------ shape

  @property
  def batch_size(self) -> int:
    return int(self.centers.shape[0])

  @property
  def num_centers(self) -> int:
    return len(self.levels)

  @property
  def num_levels(self) -> int:
    return max(self.levels) + 1

  def level_indices(self, level: int) -> tuple[int, ...]:
    return tuple(i for i, l in enumerate(self.levels) if l == level)

  @property
  def roots(self) -> tuple[int, ...]:
    """The centres an edit picks: those of level 0 without a parent (every object of a
    multi-object heatmap, the level-0 centre of a hierarchical one)."""
    return tuple(i for i, (l, p) in enumerate(zip(self.levels, self.parents))
                 if p < 0 and l == 0)

  def descendants(self, i: int) -> tuple[int, ...]:
    """Centres derived (directly or not) from centre ``i``."""
    out, frontier = [], [i]
    while frontier:
      kids = [k for k, p in enumerate(self.parents) if p in frontier]
      out += kids
      frontier = kids
    return tuple(out)

  # ------------------------------------------------------------------ rendering

  def maps(self, resolution: int, dtype=jnp.float32) -> jax.Array:
    """Every sub-heatmap at ``resolution``: (N, R, R, K)."""
    g = jnp.asarray(grid(resolution))
    c = jnp.asarray(self.centers, jnp.float32)
    dy = g[None, :, None, None] - c[:, None, None, :, 0]
    dx = g[None, None, :, None] - c[:, None, None, :, 1]
    s = jnp.asarray(self.sigmas, jnp.float32)[:, None, None, :]
    a = jnp.asarray(self.amplitudes, jnp.float32)[:, None, None, :]
    return (a * jnp.exp(-(dy * dy + dx * dx) / s) + EPS).astype(dtype)

  def level_maps(self, level: int, resolution: int, dtype=jnp.float32) -> jax.Array:
    """The sub-heatmaps of one level: (N, R, R, K_level)."""
    idx = self.level_indices(level)
    if not idx:
      raise ValueError(f"no centres in level {level} (levels: {self.levels})")
    return jnp.take(self.maps(resolution, dtype), jnp.asarray(idx), axis=-1)

  @classmethod
  def from_eqgan(cls, centers: Array, l2_delta: Array, l3_delta: Array, sigma: float | Array,
                 cur_sigma2: Array, cur_sigma3: Array) -> "Heatmaps":
    """The hierarchical heatmap that genforce/eqgan-sa's ``generate_heatmap_multi`` renders
    for these arguments (its ``b8``, ``b16``, ``b32`` maps = levels 0, 1, 2 here).

    Args:
      centers: (N, 2) level-0 centres ``(y, x)``.
      l2_delta, l3_delta: (N, 2, 2) and (N, 2, 4) offsets ``[n, (y, x), sub-centre]`` of the
        level-1 and level-2 centres from the level-0 one.
      sigma: the level-0 sigma, a scalar (the official code's) or (N,).
      cur_sigma2, cur_sigma3: (N, 1, 1, 2) and (N, 1, 1, 4) sigmas of the finer centres.
    """
    c0 = np.asarray(centers, np.float32)
    n = len(c0)
    subs = [c0[:, None, :]] + [c0[:, None, :] + np.asarray(d, np.float32).transpose(0, 2, 1)
                               for d in (l2_delta, l3_delta)]
    sig0 = np.broadcast_to(np.asarray(sigma, np.float32).reshape(-1, 1), (n, 1))
    sigmas = [sig0] + [np.asarray(s, np.float32).reshape(n, -1) for s in (cur_sigma2, cur_sigma3)]
    counts = tuple(s.shape[1] for s in subs)
    if counts != LEVEL_COUNTS or tuple(s.shape[1] for s in sigmas) != LEVEL_COUNTS:
      raise ValueError(f"EqGAN-SA heatmaps have {LEVEL_COUNTS} centres per level; got centres "
                       f"{counts} and sigmas {tuple(s.shape[1] for s in sigmas)}")
    levels, parents = structure("hierarchical")
    sigmas = np.concatenate(sigmas, 1)
    return cls(centers=np.concatenate(subs, 1), sigmas=sigmas,
               amplitudes=np.ones(sigmas.shape, np.float32), levels=levels, parents=parents)

  # ------------------------------------------------------------------ edits

  def _check(self, i: int) -> None:
    if not 0 <= i < self.num_centers:
      raise IndexError(f"centre {i} out of range: this heatmap has {self.num_centers} "
                       f"centres (0..{self.num_centers - 1})")

  def _selected(self, i: int, with_children: bool) -> np.ndarray:
    self._check(i)
    sel = np.zeros(self.num_centers, bool)
    sel[[i, *(self.descendants(i) if with_children else ())]] = True
    return sel

  def move(self, i: int, dy: float | Array, dx: float | Array,
           with_children: bool = True) -> "Heatmaps":
    """Shifts centre ``i`` by ``(dy, dx)`` (scalars or (N,) arrays, [-1, 1] units).

    The centres derived from ``i`` (the finer levels of a hierarchical heatmap) move with
    it, as in the paper ("if the center at level 0 shifts, the heatmaps at other levels
    adjust accordingly"); ``with_children=False`` moves ``i`` alone.
    """
    xp = _xp(self.centers)
    sel = xp.asarray(self._selected(i, with_children))[None, :, None]
    delta = xp.stack(xp.broadcast_arrays(xp.asarray(dy, xp.float32),
                                         xp.asarray(dx, xp.float32)), -1)
    delta = xp.reshape(delta, (-1, 1, 2))
    return self.replace(centers=self.centers + xp.where(sel, delta, 0).astype(self.centers.dtype))

  def move_each(self, chosen: Array, dy: Array, dx: Array) -> "Heatmaps":
    """Shifts root centre ``chosen[k]`` of sample ``k`` (with its children) by ``(dy[k],
    dx[k])``: :meth:`move` once per root, each sample's offset where it chose that root."""
    xp, out = _xp(self.centers), self
    for i in self.roots:
      sel = chosen == i
      out = out.move(i, xp.where(sel, dy, 0), xp.where(sel, dx, 0))
    return out

  def remove(self, i: int) -> "Heatmaps":
    """Drops centre ``i`` (its map becomes the constant floor 0.01)."""
    xp = _xp(self.amplitudes)
    sel = xp.asarray(self._selected(i, False))[None, :]
    return self.replace(amplitudes=xp.where(sel, 0, self.amplitudes).astype(self.amplitudes.dtype))

  def scale(self, i: int, factor: float | Array) -> "Heatmaps":
    """Multiplies ``sigma`` of centre ``i`` by ``factor`` (> 1 widens its area)."""
    xp = _xp(self.sigmas)
    sel = xp.asarray(self._selected(i, False))[None, :]
    f = xp.reshape(xp.asarray(factor, xp.float32), (-1, 1))
    return self.replace(sigmas=xp.where(sel, self.sigmas * f, self.sigmas).astype(self.sigmas.dtype))

  # ------------------------------------------------------------------ batch helpers

  def take(self, index: Array) -> "Heatmaps":
    """Samples ``index`` (an int array or a slice) of the batch."""
    return jax.tree.map(lambda a: a[index], self)

  def numpy(self) -> "Heatmaps":
    return jax.tree.map(lambda a: np.asarray(a), self)

  @staticmethod
  def concatenate(parts: Sequence["Heatmaps"]) -> "Heatmaps":
    xp = _xp(parts[0].centers)
    return jax.tree.map(lambda *a: xp.concatenate(a, 0), *parts)

  def pixel_centers(self, resolution: int) -> np.ndarray:
    """Centres in pixel units ``(row, col)`` of a ``resolution``-sized image: (N, K, 2)."""
    return (np.asarray(self.centers) + 1.0) * (resolution - 1) / 2.0


# ---------------------------------------------------------------------------- sampling


def move_offsets(old: Array, angle: Array, length: Array) -> Array:
  """The offsets ``p = clip(c + length (sin a, cos a), -+MOVE_LIMIT) - c`` of centres ``c``
  (N, 2) moved ``length`` (N,) in direction ``angle`` (N,): (N, 2), numpy or jax."""
  xp = _xp(old)
  step = length[:, None] * xp.stack([xp.sin(angle), xp.cos(angle)], -1)
  return xp.clip(old + step, -MOVE_LIMIT, MOVE_LIMIT) - old


def structure(mode: str, num_objects: int = MULTI_OBJECTS
              ) -> tuple[tuple[int, ...], tuple[int, ...]]:
  """``(levels, parents)`` of the heatmaps that ``sample(..., mode)`` draws."""
  if mode not in MODES:
    raise ValueError(f"heatmap mode must be one of {MODES}, got {mode!r}")
  if mode == "multi":
    return (0,) * num_objects, (-1,) * num_objects
  levels = tuple(l for l, n in enumerate(LEVEL_COUNTS) for _ in range(n))
  parents = tuple(-1 if (l == 0 or mode == "independent") else 0 for l in levels)
  return levels, parents


def _root(key: jax.Array, shape: tuple[int, ...], std: float) -> jax.Array:
  return jnp.clip(std * jax.random.normal(key, shape + (2,)), -ROOT_CLAMP, ROOT_CLAMP)


def _sample_single(key: jax.Array, hierarchical: bool):
  keys = jax.random.split(key, 2 * len(LEVEL_COUNTS))
  root = _root(keys[0], (1,), ROOT_STD)
  centers = [root]
  sigmas = [0.5 * (1.0 + jax.random.uniform(keys[1], (1,)))]
  for l in range(1, len(LEVEL_COUNTS)):
    n, a = LEVEL_COUNTS[l], LEVEL_OFFSETS[l]
    kc, ks = jax.random.split(keys[2 * l])
    if hierarchical:
      centers.append(root + jax.random.uniform(kc, (n, 2), minval=-a, maxval=a))
    else:
      centers.append(_root(kc, (n,), ROOT_STD))
    sigmas.append((jax.random.uniform(ks, (n,)) + 0.1) / LEVEL_SIGMA_DIV[l])
  return jnp.concatenate(centers, 0), jnp.concatenate(sigmas, 0)


def _sample_multi(key: jax.Array, num_objects: int, std: float, sigma_scale: float):
  kc, ks = jax.random.split(key)
  return (_root(kc, (num_objects,), std),
          sigma_scale * (1.0 + jax.random.uniform(ks, (num_objects,))))


def sample(key: jax.Array, n: int, mode: str = "hierarchical", *,
           num_objects: int = MULTI_OBJECTS, object_std: float = MULTI_STD,
           object_sigma_scale: float = MULTI_SIGMA_SCALE) -> Heatmaps:
  """``n`` random heatmaps (jax arrays); ``mode`` in hierarchical | independent | multi."""
  levels, parents = structure(mode, num_objects)
  keys = jax.random.split(key, n)
  if mode == "multi":
    one = lambda k: _sample_multi(k, num_objects, object_std, object_sigma_scale)
  else:
    one = lambda k: _sample_single(k, mode == "hierarchical")
  centers, sigmas = jax.vmap(one)(keys)
  return Heatmaps(centers=centers, sigmas=sigmas, amplitudes=jnp.ones(sigmas.shape),
                  levels=levels, parents=parents)


def from_centers(centers: Array, sigmas: Array, mode: str = "multi") -> Heatmaps:
  """A heatmap from explicit centres (N, K, 2) and sigmas (N, K) with ``mode``'s structure
  (``multi``: K level-0 objects; hierarchical/independent: K must be 7)."""
  centers, sigmas = np.asarray(centers, np.float32), np.asarray(sigmas, np.float32)
  levels, parents = structure(mode, centers.shape[1])
  if len(levels) != centers.shape[1]:
    raise ValueError(f"{mode} heatmaps have {len(levels)} centres, got {centers.shape[1]}")
  return Heatmaps(centers=centers, sigmas=sigmas, amplitudes=np.ones(sigmas.shape, np.float32),
                  levels=levels, parents=parents)
