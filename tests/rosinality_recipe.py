"""Rebuilds the rosinality reference state dicts from shared/reference recipes (numpy only).

See shared/reference/stylegan2_rosinality/<cfg>/recipe.md: key k (numbered separately in G
and D, buffers included) gets ``default_rng(1000 + k).standard_normal(shape) * s``.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

_K = np.outer([1, 3, 3, 1], [1, 3, 3, 1]).astype(np.float32) / np.float32(64)


def _value(key: str, shape: list[int], k: int, fir_gain: float) -> np.ndarray:
  if key.endswith(".kernel"):
    return (_K * np.float32(fir_gain)).astype(np.float32)
  s = 0.5 if (key.endswith("bias") or key.endswith("noise.weight")
              or key.startswith("noises.")) else 1.0
  if key.startswith("style."):
    s *= 100.0
  return (np.random.default_rng(1000 + k).standard_normal(shape).astype(np.float32)
          * np.float32(s))


def state_dicts(cfg_dir: pathlib.Path) -> tuple[dict, dict, dict]:
  """(generator state dict, discriminator state dict, constructor args) as numpy float32."""
  manifest = json.loads((cfg_dir / "manifest.json").read_text())
  g = {key: _value(key, shape, k, 4.0)
       for k, (key, shape) in enumerate(manifest["generator"]["keys"])}
  d = {key: _value(key, shape, k, 1.0)
       for k, (key, shape) in enumerate(manifest["discriminator"]["keys"])}
  return g, d, manifest["generator"]["constructor"]


def to_nhwc(a: np.ndarray) -> np.ndarray:
  return np.asarray(a).transpose(0, 2, 3, 1)
