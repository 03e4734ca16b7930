"""Public SSN API (``js.ssn``): block latents, block resampling, the model, its metric.

    import jaxspatial as js
    m = js.load("runs/ssn")                         # an SSNModel
    z = m.sample_z(seed=3, n=1)                     # (1, nh, nw, nz)
    z2 = js.ssn.resample_blocks(z, [(0, 1), (0, 2)], seed=7)
    x, x2 = m.generate(z), m.generate(z2)           # block (0,1),(0,2) redrawn, rest kept
    js.ssn.distortion(m, num_samples=256)           # Table-2 distortion with a 95% CI

The metric is :mod:`jaxspatial.metrics.distortion` and the training plug-in
:mod:`jaxspatial.training.ssn`; ``jaxspatial.ssn`` gathers the public names.

Latent RNG (Definition 1 by construction): block ``(r, c)`` of sample ``i`` drawn with
``seed`` is ``normal(fold_in(fold_in(fold_in(key(seed), i), r), c), (nz,))``. A fresh
``sample_z(seed, n)`` and ``resample_blocks(z, blocks, seed)`` use this same rule, so
resampling every block in turn with one seed gives exactly ``sample_z(seed, n)``, blocks not
listed are untouched, and a block's values do not depend on ``n`` or on the grid size.
Since the blocks are i.i.d. N(0, I), resampling all blocks with any seeds, in any order,
yields a fresh sample from P(z) — the paper's Definition 1 for P^a = "redraw z_a".
"""

from __future__ import annotations

import functools
from typing import Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxspatial.api.model import GeneratorModel, check_shape
from jaxspatial.errors import UserError
from jaxspatial.models import ssn as ssn_lib

Array = jax.Array


# ------------------------------------------------------------------------ latents


@functools.partial(jax.jit, static_argnums=(1, 2, 3, 4))
def _draw_blocks(seed: Array, n: int, nh: int, nw: int, nz: int) -> Array:
  base = jax.random.key(seed)

  def block(i, r, c):
    key = jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(base, i), r), c)
    return jax.random.normal(key, (nz,))

  rows = jax.vmap(lambda i, r: jax.vmap(lambda c: block(i, r, c))(jnp.arange(nw)),
                  in_axes=(None, 0))
  return jax.vmap(lambda i: rows(i, jnp.arange(nh)))(jnp.arange(n))


def sample_z(seed: int, n: int, grid: Sequence[int], z_dim: int) -> np.ndarray:
  """(n, nh, nw, z_dim) i.i.d. N(0, 1) block latents (the RNG rule in the module docstring)."""
  nh, nw = (int(g) for g in grid)
  return np.asarray(_draw_blocks(jnp.uint32(seed), int(n), nh, nw, int(z_dim)))


def _block_list(blocks: Iterable[Sequence[int]], grid: tuple[int, int]) -> list[tuple[int, int]]:
  out = []
  for b in blocks:
    if len(b) != 2:
      raise UserError(f"a block is a (row, col) pair, got {tuple(b)}")
    r, c = int(b[0]), int(b[1])
    if not (0 <= r < grid[0] and 0 <= c < grid[1]):
      raise UserError(f"block ({r}, {c}) is outside the {grid[0]}x{grid[1]} latent grid")
    out.append((r, c))
  return out


def resample_blocks(z: np.ndarray, blocks: Iterable[Sequence[int]], seed: int) -> np.ndarray:
  """``z`` (n, nh, nw, nz) with the listed ``(row, col)`` blocks redrawn from ``seed``.

  The new block ``(r, c)`` of sample ``i`` equals ``sample_z(seed, n, ...)[i, r, c]``; all
  other blocks are returned unchanged.
  """
  z = np.asarray(z, np.float32)
  if z.ndim != 4:
    raise UserError(f"z has shape {z.shape}; expected (n, nh, nw, nz)")
  n, nh, nw, nz = z.shape
  mask = np.zeros((1, nh, nw, 1), bool)
  for r, c in _block_list(blocks, (nh, nw)):
    mask[0, r, c] = True
  return np.where(mask, sample_z(seed, n, (nh, nw), nz), z)


# ------------------------------------------------------------------------ model


class SSNModel(GeneratorModel):
  """``js.load`` result for kind "ssn": spatial latents (n, nh, nw, nz), spatial W+
  (n, num_ws, nh, nw, w_dim), and :meth:`resample`."""

  draggable = False   # DragGAN is not defined on a block grid here (resample blocks instead)

  def __init__(self, config, variables, **kw):
    super().__init__(config, variables, **kw)
    self.grid: tuple[int, int] = ssn_lib.grid_of(config.model)

  def sample_z(self, seed: int, n: int = 1) -> np.ndarray:
    """(n, nh, nw, z_dim) block latents from ``seed`` (row i is the same for any n)."""
    return sample_z(seed, n, self.grid, self.z_dim)

  @property
  def latent_shape(self) -> tuple[int, ...]:
    return (*self.grid, self.z_dim)

  @property
  def style_shape(self) -> tuple[int, ...]:
    """mapping() gives the per-block MLP + block encoder output (n, nh, nw, w_dim); truncation
    acts per block toward ``w_avg``."""
    return (*self.grid, self.w_dim)

  def resample(self, z: np.ndarray, blocks: Iterable[Sequence[int]], seed: int) -> np.ndarray:
    """:func:`resample_blocks` after checking ``z`` against this model's grid."""
    z = check_shape(z, (None, *self.latent_shape), "z")
    return resample_blocks(z, blocks, seed)

  def resample_latent(self, latent: np.ndarray, ws: np.ndarray, space: str,
                      blocks: Iterable[Sequence[int]], seed: int
                      ) -> tuple[np.ndarray, np.ndarray]:
    """A projected latent of ``space`` and its W+ with latent ``blocks`` ``(row, col)`` redrawn
    from ``seed`` (:func:`sample_z`'s rule) -> (latent, W+). ``w``: the blocks of the
    pre-encoder grid become the new blocks' MLP output and the grid is re-encoded, exactly as
    resampling ``z`` would; ``wplus``: the blocks of every layer become the new sample's mapped
    grid. (:func:`jaxspatial.edit.projection.resampled_projection` on a ``Projection``.)"""
    n = len(ws)
    mask = np.zeros((1, *self.grid, 1), bool)
    for r, c in _block_list(blocks, self.grid):
      mask[0, r, c] = True
    z_new = sample_z(seed, n, self.grid, self.z_dim)
    if space == "w":
      block_mapping, expand = self.cached("ssn.resample_w", self._block_fns)
      latent = np.where(mask, np.asarray(block_mapping(self.g_vars, z_new)), latent)
      return latent, np.asarray(expand(self.g_vars, jnp.asarray(latent)))
    ws = np.where(mask[:, None], self.mapping(z_new)[:, None], ws)
    return ws, ws

  def _block_fns(self):
    """The jitted per-block MLP (z grid -> pre-encoder grid) and ``w``-space expansion."""
    g = self.generator
    mapping = self.jit(lambda v, z: g.apply(v, z, method=lambda mod, z: mod.mapping_network(z)))

    def expand(v, latent):
      style = self.w_to_style(v, latent)
      return jnp.broadcast_to(style[:, None], (style.shape[0], self.num_ws) + style.shape[1:])
    return mapping, self.jit(expand)

  # ------------------------------------------------------------------ hooks of the edit layer
  # (GeneratorModel's: a projection's ``w`` is the per-block MLP output *before* the block
  # encoder, so that a block can be redrawn and re-encoded)

  def sample_w(self, g_vars, key, n):
    """(n, w_dim): one block's MLP output per fresh z (the W statistics are per block)."""
    z = jax.random.normal(key, (n, self.z_dim))
    return self.generator.apply(g_vars, z, method=lambda mod, z: mod.mapping_network(z))

  def w_to_style(self, g_vars, w):
    return self.generator.apply(g_vars, w, method=lambda mod, u: mod.encoder(u))

  def sample_styles(self, g_vars, key, n):
    g = self.generator
    z = jax.random.normal(key, (n, *self.latent_shape))
    return g.apply(g_vars, z, method=type(g).mapping)

  def w_from_styles(self, ws):
    raise UserError("an SSN projection in w space starts from its pre-encoder block grid, "
                    "which a W+ does not give; start from init_ws with space='wplus'")
