"""The parity check the PyTorch-reference tests share (the references' recommended tolerance)."""

import numpy as np


def assert_close(name, got, ref):
  """``max|got - ref| <= 1e-4 * max(1, max|ref|)``, shapes equal."""
  got, ref = np.asarray(got), np.asarray(ref)
  assert got.shape == ref.shape, (name, got.shape, ref.shape)
  tol = 1e-4 * max(1.0, float(np.abs(ref).max()))
  err = float(np.abs(got - ref).max())
  assert err <= tol, f"{name}: max error {err:.3g} > {tol:.3g}"
