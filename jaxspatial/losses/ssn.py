"""SSN's low-distortion regulariser R_D (Hong et al. 2020, eq. 2), as pure functions.

    R_D(g) = Σ_a Σ_{b≠a} E_{z,z'} [ D(g(z)_b, g(z̃^a(z, z'))_b) ]

``z̃^a`` is ``z`` with latent block ``a`` taken from an independent ``z'`` (the paper's §3.3
text swaps the roles of z and z', which would resample every block but ``a``; resampling
``a`` is what eq. LDBR and Definition 1 describe). Per sample we draw one block ``a``
uniformly, which is an unbiased estimate of the mean over ``a``; ``reduction="sum"``
multiplies by the number of blocks (the sum over ``a``) and sums, rather than averages, the
per-block distortions over ``b ≠ a`` — eq. 2 literally. The default ``"mean"`` is the
per-pixel distortion over ``b ≠ a`` averaged over ``a``: with :func:`pixel_distortion` it
estimates exactly the Table-2 distortion metric (:func:`jaxspatial.ssn.distortion`), the
scale on which the paper's λ_D = 100 gives a loss of order one. The two differ by the
constant ``nb·(nb-1)`` (``nb`` blocks).

``D`` per pixel is the squared Euclidean distance between the two RGB vectors in the
generator's [-1, 1] range ("the Euclidean distance between pixels", §2), averaged over a
block's pixels.

The distortion ``D`` is pluggable: any ``distortion_fn(x, x_tilde) -> (n, h, w)`` per-pixel
map whose size is a multiple of the block grid (:func:`pixel_distortion` by default; an
LPIPS spatial map works the same way). ``D`` and its block means are
:mod:`jaxspatial.losses.distortion`, shared with the Table-2 metric.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from jaxspatial.losses.distortion import block_means, pixel_distortion

Array = jax.Array
REDUCTIONS = ("mean", "sum")
DISTORTION_DEFAULTS = dict(distortion_weight=0.0, distortion_reduction="mean",
                           distortion_batch_shrink=1)
"""The one default of each ``loss.distortion_*`` a config may lack: no R_D term, the per-pixel
mean (the Table-2 scale), the whole batch. ``configs/ssn.py`` sets them (λ_D = 100)."""


def replace_blocks(z: Array, z_prime: Array, blocks: Array) -> Array:
  """``z`` with block ``blocks[i]`` (flat index ``row * nw + col``) of sample ``i`` taken from
  ``z_prime``; z, z_prime: (n, nh, nw, nz), blocks: (n,) int."""
  n, nh, nw, _ = z.shape
  onehot = jax.nn.one_hot(blocks, nh * nw, dtype=jnp.bool_).reshape(n, nh, nw, 1)
  return jnp.where(onehot, z_prime, z)


def distortion_regularizer(generate_fn: Callable[[Array], Array], z: Array, z_prime: Array,
                           key: Array, *,
                           distortion_fn: Callable[[Array, Array], Array] = pixel_distortion,
                           reduction: str = "mean",
                           images: Array | None = None) -> tuple[Array, dict]:
  """Monte-Carlo estimate of R_D for one batch (differentiable through ``generate_fn``).

  Args:
    generate_fn: latents (n, nh, nw, nz) -> images (n, H, W, C). It must be deterministic
      given its input — e.g. the same noise key in both calls (noise drawn per sample index
      then matches) or the constant noise — or the noise itself counts as distortion.
    z, z_prime: (n, nh, nw, nz) independent latents.
    key: picks the resampled block ``a`` of each sample, uniformly.
    distortion_fn: (x, x_tilde) -> (n, h, w) per-pixel distortion.
    reduction: "mean" (per-pixel over b ≠ a, see module docstring) or "sum" (eq. 2).
    images: ``generate_fn(z)`` if the caller already has it (saves one forward pass).
  Returns:
    ``(loss, aux)``; aux: ``blocks`` (n,) the resampled ``a``, ``block_distortion``
    (n, nh, nw) per-block means, ``per_sample`` (n,) the mean over the blocks b ≠ a.
  """
  if reduction not in REDUCTIONS:
    raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
  n, nh, nw, _ = z.shape
  nb = nh * nw
  if nb < 2:
    raise ValueError("R_D needs at least two latent blocks")
  blocks = jax.random.randint(key, (n,), 0, nb)
  x = generate_fn(z) if images is None else images
  x_tilde = generate_fn(replace_blocks(z, z_prime, blocks))
  per_block = block_means(distortion_fn(x, x_tilde), (nh, nw))
  others = 1.0 - jax.nn.one_hot(blocks, nb, dtype=per_block.dtype).reshape(n, nh, nw)
  summed = jnp.sum(per_block * others, axis=(1, 2))
  per_sample = summed / (nb - 1)
  loss = jnp.mean(per_sample) if reduction == "mean" else nb * jnp.mean(summed)
  return loss, {"blocks": blocks, "block_distortion": per_block, "per_sample": per_sample}
