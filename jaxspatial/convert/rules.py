"""The rule engine every converter shares: torch state-dict keys -> Flax variable paths.

A converter is a list of :class:`Rule` s. Each rule matches torch keys with a regex and names
the Flax variable the tensor becomes (a ``"collection/a/b"`` path template with ``\\1``
groups), the layout transform on the way in and its inverse on the way out (export). A rule
whose target is None matches a FIR filter buffer, which is checked against the [1,3,3,1]
filter and not stored.

:func:`apply_rules` converts a whole state dict and checks the result against the shapes
``jax.eval_shape`` gives for the architecture (:func:`flatten_shapes`), so every unexpected
key, missing variable, shape mismatch and wrong FIR filter is reported by name in one
:class:`ConversionError`. :func:`export_state_dict` walks the same rules backwards over a
list of torch keys.

Layout transforms (torch -> Flax; each ``*_back`` is the inverse): :func:`conv` (OIHW ->
HWIO), :func:`modconv` (rosinality's ``[1, O, I, k, k]`` -> HWIO), :func:`linear` (``[out, in]``
<-> ``(in, out)``, its own inverse), :func:`nchw_to_nhwc` / :func:`nhwc_to_nchw`, and
:func:`flatten_rows_nchw_to_nhwc` / :func:`flatten_rows_nhwc_to_nchw` (a dense layer after a
4x4 feature map, which torch flattens NCHW and we flatten NHWC).

Used by :mod:`.rosinality`, :mod:`.ada`, :mod:`.eqgan` and :mod:`.latent_composition`.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Mapping

import numpy as np

from jaxspatial.errors import UserError
from jaxspatial.models import layers

Transform = Callable[[np.ndarray], np.ndarray]


class ConversionError(UserError):
  """The state dict does not match what the architecture expects."""


# ------------------------------------------------------------------------ layout transforms


def identity(a: np.ndarray) -> np.ndarray:
  return a


def conv(w: np.ndarray) -> np.ndarray:
  """Conv kernel, torch OIHW -> Flax HWIO."""
  return w.transpose(2, 3, 1, 0)


def conv_back(w: np.ndarray) -> np.ndarray:
  """Conv kernel, Flax HWIO -> torch OIHW."""
  return w.transpose(3, 2, 0, 1)


def modconv(w: np.ndarray) -> np.ndarray:
  """rosinality's modulated conv weight ``[1, O, I, k, k]`` -> HWIO."""
  return w[0].transpose(2, 3, 1, 0)


def modconv_back(w: np.ndarray) -> np.ndarray:
  """HWIO -> rosinality's modulated conv weight ``[1, O, I, k, k]``."""
  return w.transpose(3, 2, 0, 1)[None]


def linear(w: np.ndarray) -> np.ndarray:
  """Dense weight, torch ``[out, in]`` <-> Flax ``(in, out)`` (its own inverse)."""
  return w.T


def nchw_to_nhwc(w: np.ndarray) -> np.ndarray:
  """``[1, C, H, W]`` -> ``[1, H, W, C]`` (constant input, noise maps)."""
  return w.transpose(0, 2, 3, 1)


def nhwc_to_nchw(w: np.ndarray) -> np.ndarray:
  return w.transpose(0, 3, 1, 2)


def flatten_rows_nchw_to_nhwc(w: np.ndarray) -> np.ndarray:
  """The dense layer after D's 4x4 map: torch ``[out, C*4*4]`` reads an NCHW flatten, our D
  flattens NHWC -> ``(4*4*C, out)``."""
  out, fan_in = w.shape
  c = fan_in // 16
  return w.reshape(out, c, 4, 4).transpose(2, 3, 1, 0).reshape(16 * c, out)


def flatten_rows_nhwc_to_nchw(w: np.ndarray) -> np.ndarray:
  """Inverse of :func:`flatten_rows_nchw_to_nhwc`."""
  fan_in, out = w.shape
  return w.reshape(4, 4, fan_in // 16, out).transpose(3, 2, 0, 1).reshape(out, fan_in)


# ----------------------------------------------------------------------------------- rules


@dataclasses.dataclass(frozen=True)
class Rule:
  """One torch key pattern -> one Flax variable.

  ``pattern``: a regex matched against the whole torch key. ``target``: the Flax path
  ``"collection/a/b"``, with ``\\1`` groups of the pattern; a list index captured into it
  (``convs.3``) becomes Flax's ``convs_3``; None: a FIR filter buffer, checked to equal
  ``fir_gain`` x the [1,3,3,1] filter and not stored. ``transform``: torch layout -> Flax
  layout; ``inverse``: Flax layout -> torch layout (export)."""
  pattern: str
  target: str | None
  transform: Transform = identity
  fir_gain: float = 1.0
  inverse: Transform = identity

  def target_path(self, match: re.Match) -> str:
    """The Flax path of the key ``match`` matched."""
    return re.sub(r"\.(?=\d)", "_", match.expand(self.target))


def exact(key: str, target: str | None, transform: Transform = identity) -> Rule:
  """A rule for the one torch key ``key`` (no regex)."""
  return Rule(re.escape(key), target, transform)


def flatten_shapes(tree: Mapping, prefix: str = "") -> dict[str, tuple[int, ...]]:
  """A nested variable tree (arrays or ``jax.ShapeDtypeStruct`` s) -> ``{"a/b/c": shape}``."""
  out = {}
  for k, v in tree.items():
    path = f"{prefix}/{k}" if prefix else k
    if isinstance(v, Mapping):
      out.update(flatten_shapes(v, path))
    else:
      out[path] = tuple(v.shape)
  return out


def set_path(tree: dict, path: str, value: np.ndarray) -> None:
  """``tree["a"]["b"]["c"] = value`` for path ``"a/b/c"``, creating the dicts on the way."""
  *parents, leaf = path.split("/")
  for p in parents:
    tree = tree.setdefault(p, {})
  tree[leaf] = value


def lookup(tree: Mapping, path: str) -> np.ndarray:
  """``tree["a"]["b"]["c"]`` for path ``"a/b/c"``, as float32 numpy."""
  for part in path.split("/"):
    tree = tree[part]
  return np.asarray(tree, np.float32)


def _listed(items: list[str], n: int, sep: str = ", ") -> str:
  return sep.join(items[:n]) + (" ..." if len(items) > n else "")


def apply_rules(sd: Mapping[str, np.ndarray], rules: list[Rule], expected: Mapping[str, tuple],
                what: str) -> dict:
  """State dict ``sd`` -> the nested Flax variable tree, the first matching rule per key.

  ``expected``: ``{path: shape}`` of every variable the architecture has
  (:func:`flatten_shapes` of ``jax.eval_shape(module.init, ...)``); ``buffers/w_avg`` may be
  missing (converters fill it). Raises :class:`ConversionError`, prefixed ``what``, naming
  unexpected keys, missing variables, shape mismatches and FIR filters that are not
  [1,3,3,1]."""
  tree: dict = {}
  unexpected, mismatched, bad_fir = [], [], []
  filled = set()
  for key, value in sd.items():
    value = np.asarray(value, np.float32)
    for rule in rules:
      m = re.fullmatch(rule.pattern, key)
      if m is None:
        continue
      if rule.target is None:
        if not np.allclose(value, layers.fir_kernel(gain=rule.fir_gain), atol=1e-6):
          bad_fir.append(key)
        break
      path = rule.target_path(m)
      arr = rule.transform(value)
      if path not in expected:
        unexpected.append(key)
      elif tuple(arr.shape) != expected[path]:
        mismatched.append(f"{key} {tuple(value.shape)} (expected {path} {expected[path]})")
      else:
        set_path(tree, path, arr)
        filled.add(path)
      break
    else:
      unexpected.append(key)
  missing = sorted(p for p in expected if p not in filled and p != "buffers/w_avg")
  problems = []
  if unexpected:
    problems.append(f"unexpected keys: {_listed(sorted(unexpected), 8)}")
  if missing:
    problems.append(f"missing: {_listed(missing, 8)}")
  if mismatched:
    problems.append(f"shape mismatch: {_listed(mismatched, 4, '; ')}")
  if bad_fir:
    problems.append(f"FIR kernels differ from [1,3,3,1]: {', '.join(bad_fir[:4])}")
  if problems:
    raise ConversionError(f"{what}: " + " | ".join(problems))
  return tree


def export_state_dict(tree: Mapping, keys: list[str], rules: list[Rule]) -> dict[str, np.ndarray]:
  """The inverse of :func:`apply_rules`: a torch state dict with ``keys`` (in that order),
  each from the Flax variable its first matching rule names (``inverse`` applied), FIR
  buffers as the filter itself."""
  out = {}
  for key in keys:
    rule, m = next((r, m) for r in rules if (m := re.fullmatch(r.pattern, key)))
    if rule.target is None:
      out[key] = layers.fir_kernel(gain=rule.fir_gain)
    else:
      out[key] = np.ascontiguousarray(rule.inverse(lookup(tree, rule.target_path(m))))
  return out
