"""Reading stylegan2-ada-pytorch (and EqGAN-SA) network pickles without executing anything.

A network pickle (``network-snapshot-*.pkl``) is a plain ``pickle.dump`` of
``dict(training_set_kwargs, G, D, G_ema, augment_pipe)``. The official loader runs code in
two places: every ``@persistent_class`` module is rebuilt by ``exec``-ing the Python source
embedded in the file (``module_src``), and every tensor storage is a legacy ``torch.save``
stream that ``torch.storage._load_from_bytes`` opens with ``torch.load(weights_only=False)``.
Either lets a file run whatever it likes.

:func:`load_network_pickle` instead unpickles with an explicit allow-list of globals
(``ALLOWED``; stylegan2-ada SPEC.md section 1.4), each mapped to a function of ours:

* ``torch_utils.persistence._reconstruct_persistent_obj(meta)`` -> a :class:`Record` holding
  ``meta["class_name"]`` and ``meta["state"]``; ``module_src`` is hashed, never executed;
* ``torch.storage._load_from_bytes(b)`` -> our own parser of the legacy stream (a restricted
  unpickler that allows only the ``torch.*Storage`` type markers, then the raw bytes);
* ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` -> a bounds-checked strided
  view of that storage, copied into a ``numpy.ndarray``;
* ``collections.OrderedDict`` and ``dnnlib.util.EasyDict`` -> ``dict``; ``numpy.dtype`` and
  ``numpy{.core,._core}.multiarray.scalar`` (NumPy 1.x / 2.x spellings) -> numeric numpy
  scalars only;
* the ``torch.nn`` containers EqGAN-SA's SEL holds (``Sequential``, ``InstanceNorm2d``,
  ``LeakyReLU``) -> :class:`Record` with ``module`` set.

Any other global is refused with a one-line :class:`UnsafePickleError` naming it, before it
is imported. Torch is not needed.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import io
import pathlib
import pickle
import re
import struct
from typing import Any, Callable, Iterator

import ml_dtypes
import numpy as np

from jaxspatial.errors import UserError, existing_file


class UnsafePickleError(UserError):
  """The pickle names a global outside the allow-list (nothing was imported or run)."""


@dataclasses.dataclass(eq=False)
class Record:
  """A pickled ``torch.nn.Module`` as plain data.

  Attributes:
    class_name: e.g. ``"Generator"``, ``"SynthesisLayer"``, ``"Sequential"``.
    module: the defining module for ordinary torch classes (``"torch.nn.modules.container"``);
      None for persistent classes, whose pickle stores their source text, not a module name.
    state: the module's ``__dict__`` as pickled: ``_parameters`` / ``_buffers`` (name ->
      ``np.ndarray`` or None), ``_modules`` (name -> Record), ``_init_kwargs``, the class's
      own attributes (``resolution``, ``conv_clamp``, ``use_fp16``, ...). Containers are
      plain ``dict`` / ``list`` / ``tuple`` / ``set``.
    source_sha256: sha256 of the embedded ``module_src`` (persistent classes only).
  """
  class_name: str
  module: str | None
  state: dict
  source_sha256: str | None = None

  @property
  def children(self) -> dict[str, "Record"]:
    return {k: v for k, v in (self.state.get("_modules") or {}).items() if v is not None}

  def __repr__(self) -> str:
    where = f"{self.module}." if self.module else ""
    return f"Record({where}{self.class_name}, {len(self.state_dict())} tensors)"

  @property
  def init_kwargs(self) -> dict:
    """The constructor's keyword arguments (persistent classes record them)."""
    return dict(self.state.get("_init_kwargs") or {})

  def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Record"]]:
    """(dotted name, record) for this module and every descendant, pre-order."""
    yield prefix, self
    for name, child in self.children.items():
      yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

  def state_dict(self) -> dict[str, np.ndarray]:
    """``torch.nn.Module.state_dict()`` of the record: same keys, same order."""
    out: dict[str, np.ndarray] = {}
    for name, mod in self.named_modules():
      dot = f"{name}." if name else ""
      skip = set(mod.state.get("_non_persistent_buffers_set") or ())
      for k, v in (mod.state.get("_parameters") or {}).items():
        if v is not None:
          out[dot + k] = v
      for k, v in (mod.state.get("_buffers") or {}).items():
        if v is not None and k not in skip:
          out[dot + k] = v
    return out


# ------------------------------------------------------------------------- tensor storages

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"), "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"), "BFloat16Storage": np.dtype(ml_dtypes.bfloat16),
    "LongStorage": np.dtype("<i8"), "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"), "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"), "BoolStorage": np.dtype("?"),
}


@dataclasses.dataclass(frozen=True)
class _StorageType:
  name: str
  dtype: np.dtype


@dataclasses.dataclass(eq=False)
class _Storage:
  """A decoded tensor storage: its elements as a 1-D array (or, while parsing, a key)."""
  key: str
  dtype: np.dtype
  numel: int
  array: np.ndarray | None = None


class _Restricted(pickle.Unpickler):
  """An unpickler whose globals come only from ``allowed`` ((module, name) -> object)."""

  def __init__(self, file, allowed: dict[tuple[str, str], Any], where: str = ""):
    super().__init__(file)
    self._allowed = allowed
    self._where = where

  def find_class(self, module: str, name: str):
    if (module, name) in self._allowed:
      return self._allowed[(module, name)]
    hint = ""
    if module.startswith("dnnlib.tflib"):
      hint = ("; this is a TensorFlow StyleGAN pickle: convert it to a PyTorch one with "
              "stylegan2-ada-pytorch's 'python legacy.py --source=IN.pkl --dest=OUT.pkl' first")
    raise UnsafePickleError(f"refusing to unpickle the global {module}.{name}{self._where}: it "
                            f"is not on the allow-list of network pickles{hint}")

  def persistent_load(self, pid):
    raise pickle.UnpicklingError("unexpected persistent id outside a tensor storage")


class _StorageUnpickler(_Restricted):
  """The storage object of a legacy ``torch.save`` stream: a persistent id per storage."""

  def __init__(self, file):
    allowed = {("torch", n): _StorageType(n, dt) for n, dt in _STORAGE_DTYPES.items()}
    super().__init__(file, allowed, where=" inside a tensor storage")
    self.storages: dict[str, _Storage] = {}

  def persistent_load(self, pid):
    if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
      raise pickle.UnpicklingError(f"unexpected persistent id {pid!r:.80} in a tensor storage")
    storage_type, key, _, numel = pid[1:5]
    view = pid[5] if len(pid) == 6 else None
    if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or view is not None:
      raise pickle.UnpicklingError("malformed storage record in a tensor storage")
    if not isinstance(numel, int) or numel < 0:
      raise pickle.UnpicklingError("malformed storage size in a tensor storage")
    return self.storages.setdefault(key, _Storage(key, storage_type.dtype, numel))


def _load_storage(data: bytes) -> _Storage:
  """Parses one legacy ``torch.save`` stream of a single storage (SPEC.md section 1.3):
  magic, protocol, system info, the storage pickle, its key list, then per key an int64
  element count and the raw little-endian elements."""
  if not isinstance(data, bytes):
    raise pickle.UnpicklingError("tensor storage is not a byte string")
  f = io.BytesIO(data)
  plain = lambda: _Restricted(f, {}, where=" inside a tensor storage").load()  # noqa: E731
  if plain() != _LEGACY_MAGIC or plain() != _LEGACY_PROTOCOL:
    raise pickle.UnpicklingError("tensor storage is not a legacy torch.save stream")
  info = plain()
  if not isinstance(info, dict) or info.get("little_endian") is not True:
    raise pickle.UnpicklingError("tensor storage is not little-endian")
  unpickler = _StorageUnpickler(f)
  storage = unpickler.load()
  keys = plain()
  if not isinstance(storage, _Storage) or keys != list(unpickler.storages):
    raise pickle.UnpicklingError("tensor storage holds something other than one storage")
  for key in keys:
    s = unpickler.storages[key]
    (numel,) = struct.unpack("<q", f.read(8))
    raw = f.read(numel * s.dtype.itemsize)
    if numel != s.numel or len(raw) != numel * s.dtype.itemsize:
      raise pickle.UnpicklingError("tensor storage is truncated")
    s.array = np.frombuffer(raw, s.dtype)
  return storage


def _ints(x, what: str) -> tuple[int, ...]:
  if not (isinstance(x, tuple) and all(isinstance(i, int) and i >= 0 for i in x)):
    raise pickle.UnpicklingError(f"malformed tensor {what}")
  return x


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None) -> np.ndarray:
  """A copy of the strided view ``storage[offset + sum(i_k * stride_k)]``, bounds-checked."""
  if not isinstance(storage, _Storage) or storage.array is None:
    raise pickle.UnpicklingError("tensor without a decoded storage")
  size, stride = _ints(size, "size"), _ints(stride, "stride")
  (offset,) = _ints((storage_offset,), "offset")
  if len(size) != len(stride):
    raise pickle.UnpicklingError("tensor size and stride differ in length")
  if 0 in size:
    return np.zeros(size, storage.dtype)
  last = offset + sum((n - 1) * s for n, s in zip(size, stride))
  if last >= storage.array.size:
    raise pickle.UnpicklingError("tensor reaches past the end of its storage")
  item = storage.dtype.itemsize
  view = np.lib.stride_tricks.as_strided(storage.array[offset:], size,
                                         [s * item for s in stride], writeable=False)
  return np.array(view)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None) -> np.ndarray:
  if not isinstance(data, np.ndarray):
    raise pickle.UnpicklingError("parameter data is not a tensor")
  return data


# ------------------------------------------------------------------------- other globals


def _reconstruct_persistent_obj(meta) -> Record:
  """``torch_utils.persistence``'s reconstructor, minus the ``exec(module_src)``."""
  if not (isinstance(meta, dict) and meta.get("type") == "class"
          and isinstance(meta.get("class_name"), str) and isinstance(meta.get("state"), dict)):
    raise pickle.UnpicklingError("malformed persistent object")
  src = meta.get("module_src")
  digest = hashlib.sha256(src.encode()).hexdigest() if isinstance(src, str) else None
  return Record(meta["class_name"], None, meta["state"], digest)


class _DType:
  """``numpy.dtype(code, align, copy)`` for numeric codes only; byte order from BUILD."""

  def __init__(self, code, align=False, copy=True):
    if not (isinstance(code, str) and re.fullmatch(r"[biuf]\d|[iufc]\d\d?|\?", code)):
      raise pickle.UnpicklingError(f"refusing numpy dtype {code!r:.40}: not numeric")
    self.dtype = np.dtype(code)

  def __setstate__(self, state):
    if isinstance(state, tuple) and len(state) > 1 and state[1] in ("<", ">", "|", "="):
      self.dtype = self.dtype.newbyteorder(state[1])


def _numpy_scalar(dtype, data=None):
  if not (isinstance(dtype, _DType) and isinstance(data, bytes)
          and len(data) == dtype.dtype.itemsize):
    raise pickle.UnpicklingError("malformed numpy scalar")
  return np.frombuffer(data, dtype.dtype)[0]


class _EasyDict(dict):
  """Stands in for ``dnnlib.util.EasyDict`` while unpickling; becomes a plain dict."""


class _TorchModule:
  """Stands in for an allowed ``torch.nn`` class while unpickling; becomes a Record."""
  name = module = ""

  def __setstate__(self, state):
    if not isinstance(state, dict):
      raise pickle.UnpicklingError(f"malformed {self.name} state")
    self.state = state


TORCH_MODULES = ("torch.nn.modules.container.Sequential",
                 "torch.nn.modules.instancenorm.InstanceNorm2d",
                 "torch.nn.modules.activation.LeakyReLU")


def _torch_module_class(path: str) -> type:
  module, name = path.rsplit(".", 1)
  return type(name, (_TorchModule,), {"name": name, "module": module})


ALLOWED: dict[tuple[str, str], Callable] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("numpy", "dtype"): _DType,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    **{tuple(p.rsplit(".", 1)): _torch_module_class(p) for p in TORCH_MODULES},
}

_LEAVES = (np.ndarray, np.generic, str, bytes, int, float, complex, bool, type(None))


def _plain(obj, memo: dict[int, Any]):
  """Replaces the stand-ins by plain data (dicts, Records, arrays), keeping shared objects
  shared."""
  if isinstance(obj, _LEAVES):
    return obj
  if id(obj) in memo:
    return memo[id(obj)]
  if isinstance(obj, Record):
    memo[id(obj)] = obj
    obj.state = _plain(obj.state, memo)
    return obj
  if isinstance(obj, _TorchModule):
    rec = memo[id(obj)] = Record(obj.name, obj.module, {})
    rec.state = _plain(getattr(obj, "state", {}), memo)
    return rec
  if isinstance(obj, dict):
    out = memo[id(obj)] = {}
    out.update((_plain(k, memo), _plain(v, memo)) for k, v in obj.items())
    return out
  if isinstance(obj, list):
    out = memo[id(obj)] = []
    out.extend(_plain(v, memo) for v in obj)
    return out
  if isinstance(obj, (tuple, set, frozenset)):
    return type(obj)(_plain(v, memo) for v in obj)
  if isinstance(obj, _DType):
    return obj.dtype
  raise pickle.UnpicklingError(f"unexpected {type(obj).__name__} in the pickle")


def _first_line(e: BaseException) -> str:
  return (str(e).strip().splitlines() or [type(e).__name__])[0][:160]


def load_pickle(path: str | pathlib.Path) -> Any:
  """Unpickles ``path`` with the allow-list; returns plain data (see :class:`Record`).

  Raises:
    UserError: no such file; :class:`UnsafePickleError` for a global outside the
      allow-list; a truncated or corrupt pickle.
  """
  path = existing_file(path, "a network pickle")
  try:
    obj = _Restricted(io.BytesIO(path.read_bytes()), ALLOWED).load()
    return _plain(obj, {})
  except UnsafePickleError as e:
    raise UnsafePickleError(f"{path}: {e}") from None
  except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, IndexError,
          AttributeError, struct.error, OverflowError, MemoryError, RecursionError) as e:
    raise UserError(f"{path}: not a readable network pickle, truncated or corrupt "
                    f"({_first_line(e)})") from None


def load_network_pickle(path: str | pathlib.Path) -> dict:
  """A stylegan2-ada-style snapshot, read without executing anything.

  Returns:
    the pickled dict: ``G_ema`` (always), usually ``G``, ``D`` (:class:`Record`),
    ``training_set_kwargs`` (dict or None), ``augment_pipe`` (Record or None).
  Raises:
    UserError: as :func:`load_pickle`, or a pickle without a ``G_ema`` network.
  """
  data = load_pickle(path)
  if not (isinstance(data, dict) and isinstance(data.get("G_ema"), Record)):
    found = (", ".join(sorted(map(str, data))[:8]) if isinstance(data, dict)
             else type(data).__name__)
    raise UserError(f"{path}: not a stylegan2-ada network pickle (no 'G_ema' network; "
                    f"found {found or 'an empty dict'})")
  return data
