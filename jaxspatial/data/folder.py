"""Images from a folder tree or a .zip archive (FFHQ-style), as grain random-access sources.

Files with the extensions in :data:`IMAGE_EXTENSIONS` are listed once, sorted by their
relative path (so index ``i`` is the same file on every machine), hidden files and folders
(``.name``) and ``__MACOSX`` entries skipped. Each image is converted to RGB, its centred
largest square cropped and resized with Lanczos to ``resolution x resolution``.

A file that cannot be decoded is skipped: a ``logging.warning`` names it (once per process),
and the next readable index (cyclically) is returned in its place, so the substitution is
deterministic. Each example says how many unreadable entries were stepped over to produce it
(``skipped``, 0 normally); the pipeline sums these into the count the training logs show,
which therefore also works with grain worker processes. :attr:`ImageFileSource.corrupt_count`
is the number of distinct unreadable files this source has met in the current process.

Class labels come from a ``dataset.json`` at the root of the folder or archive, as
stylegan2-ada-pytorch's ``dataset_tool.py`` writes it: ``{"labels": [[relative/path.png,
label], ...]}`` (or ``"labels": null``), a label being a class index or a list of floats.
When present every image must have one, and examples carry ``label``: float32 ``(c_dim,)``,
one-hot for class indices (``c_dim = max index + 1``), else the vector as given.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pathlib
import threading
import zipfile
from typing import IO, Any

import numpy as np
from PIL import Image

from jaxspatial.errors import UserError

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp", ".bmp")

_log = logging.getLogger(__name__)
_bad_lock = threading.Lock()   # guards each source's set of unreadable entries (threads)


def resize_center_crop(image: Image.Image, resolution: int) -> np.ndarray:
  """Centre-crops the largest square of ``image`` and resizes it (Lanczos) to
  ``(resolution, resolution, 3)`` uint8 RGB."""
  image.draft("RGB", (resolution, resolution))   # JPEG: decode at a reduced scale >= target
  if image.mode != "RGB":
    image = image.convert("RGBA").convert("RGB") if image.mode == "P" else image.convert("RGB")
  w, h = image.size
  side = min(w, h)
  box = ((w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2)
  if side != resolution or w != h:
    image = image.resize((resolution, resolution), Image.Resampling.LANCZOS, box=box,
                         reducing_gap=3.0)
  return np.asarray(image, dtype=np.uint8)


def array_to_pil(array: np.ndarray) -> Image.Image:
  """``(H, W)``, ``(H, W, 1|3|4)`` uint8 array -> PIL image (1 and 4 channels become RGB later)."""
  array = np.asarray(array)
  if array.ndim == 3 and array.shape[-1] == 1:
    array = array[..., 0]
  if array.dtype != np.uint8:
    raise ValueError(f"expected uint8 image data, got {array.dtype}")
  if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4)):
    return Image.fromarray(array)
  raise ValueError(f"expected an image of shape (H, W[, 1|3|4]), got {array.shape}")


class ImageFileSource:
  """Base of the folder and zip sources: listing, decoding, corrupt-file substitution.

  ``source[i]`` -> ``{"image": uint8 (resolution, resolution, 3), "skipped": int32}``, where
  ``skipped`` counts the unreadable entries replaced by this one. Subclasses provide
  :meth:`_open` (a readable binary file for entry ``i``) and fill ``self.files``.
  """

  def __init__(self, path: str | os.PathLike, resolution: int):
    if resolution < 1:
      raise ValueError(f"resolution must be positive, got {resolution}")
    self.path = str(path)
    self.resolution = int(resolution)
    self.files: list[str] = []
    self.labels: np.ndarray | None = None
    self._bad: set[int] = set()

  def __len__(self) -> int:
    return len(self.files)

  def __repr__(self) -> str:
    return f"{type(self).__name__}({self.path!r}, resolution={self.resolution}, files={len(self)})"

  @property
  def corrupt_count(self) -> int:
    """Distinct unreadable files this source (in this process) has skipped."""
    return len(self._bad)

  @property
  def c_dim(self) -> int:
    """Label dimension (0 without ``dataset.json`` labels)."""
    return 0 if self.labels is None else int(self.labels.shape[1])

  def _open(self, i: int) -> IO[bytes]:
    raise NotImplementedError

  def _read_labels(self, text: str | None) -> None:
    """Sets :attr:`labels` from the text of ``dataset.json`` (None: no such file)."""
    if text is None:
      return
    where = os.path.join(self.path, "dataset.json")
    try:
      entries = json.loads(text).get("labels")
      by_name = {str(name).replace("\\", "/"): label for name, label in entries or ()}
    except (ValueError, TypeError, AttributeError) as e:
      raise UserError(f"{where} is not a dataset_tool labels file: {e}") from None
    if entries is None:
      return
    missing = [f for f in self.files if f not in by_name]
    if missing:
      raise UserError(f"{where} has no label for {len(missing)} of {len(self.files)} images "
                      f"(first: {missing[0]})")
    try:
      labels = np.asarray([by_name[f] for f in self.files])
    except ValueError:
      labels = np.zeros((0,), object)
    if labels.ndim == 1 and np.issubdtype(labels.dtype, np.integer) and labels.min() >= 0:
      labels = np.eye(int(labels.max()) + 1, dtype=np.float32)[labels]
    elif labels.ndim != 2 or not np.issubdtype(labels.dtype, np.number):
      raise UserError(f"{where}: labels must be class indices >= 0 or equal-length lists of "
                      "numbers")
    self.labels = labels.astype(np.float32)

  def _decode(self, i: int) -> np.ndarray | None:
    """The resized image of entry ``i``, or None (after a warning) when it is unreadable."""
    try:
      with self._open(i) as f, Image.open(f) as image:
        return resize_center_crop(image, self.resolution)
    except Exception as e:  # noqa: BLE001 -- decoders raise many types on corrupt files
      with _bad_lock:
        first = i not in self._bad
        self._bad.add(i)
      if first:
        _log.warning("skipping unreadable image %s: %s: %s",
                     os.path.join(self.path, self.files[i]), type(e).__name__, e)
      return None

  def __getitem__(self, index: int) -> dict[str, Any]:
    n = len(self.files)
    index = int(index)
    if not -n <= index < n:
      raise IndexError(f"index {index} out of range for {n} images in {self.path}")
    for step in range(n):
      i = (index + step) % n
      if i in self._bad:
        continue
      image = self._decode(i)
      if image is not None:
        example = {"image": image, "skipped": np.int32(step)}
        if self.labels is not None:
          example["label"] = self.labels[i]
        return example
    raise UserError(f"none of the {n} image files in {self.path} could be read")


class ImageFolderSource(ImageFileSource):
  """All images under a folder, recursively (see the module docstring)."""

  def __init__(self, path: str | os.PathLike, resolution: int):
    super().__init__(path, resolution)
    root = pathlib.Path(path)
    if not root.exists():
      raise UserError(f"data path {path} does not exist")
    if not root.is_dir():
      raise UserError(f"data path {path} is neither a folder nor a .zip archive")
    files = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
      dirnames[:] = [d for d in dirnames if not d.startswith(".")]
      rel = pathlib.Path(dirpath).relative_to(root)
      files.extend((rel / f).as_posix() for f in filenames
                   if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
      raise UserError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found under {path}")
    self.files = sorted(files)
    labels = root / "dataset.json"
    self._read_labels(labels.read_text() if labels.is_file() else None)

  def _open(self, i: int) -> IO[bytes]:
    return open(os.path.join(self.path, self.files[i]), "rb")


class ZipImageSource(ImageFileSource):
  """All images inside a .zip archive. The archive is opened lazily in each process (a
  handle is never pickled into grain workers); reads from threads share it, which
  ``zipfile`` supports."""

  def __init__(self, path: str | os.PathLike, resolution: int):
    super().__init__(path, resolution)
    if not os.path.exists(path):
      raise UserError(f"data path {path} does not exist")
    try:
      with zipfile.ZipFile(path) as zf:
        names = [info.filename for info in zf.infolist() if not info.is_dir()]
        labels = zf.read("dataset.json").decode() if "dataset.json" in names else None
    except (zipfile.BadZipFile, OSError) as e:
      raise UserError(f"cannot read {path} as a .zip archive: {e}") from None
    self.files = sorted(
        n for n in names
        if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith("__MACOSX/")
        and not any(part.startswith(".") for part in n.split("/")))
    if not self.files:
      raise UserError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) found in {path}")
    self._read_labels(labels)
    self._zip: zipfile.ZipFile | None = None
    self._zip_pid = -1

  def __getstate__(self) -> dict[str, Any]:
    state = dict(self.__dict__)
    state["_zip"], state["_zip_pid"] = None, -1
    return state

  def _open(self, i: int) -> IO[bytes]:
    if self._zip is None or self._zip_pid != os.getpid():
      self._zip, self._zip_pid = zipfile.ZipFile(self.path), os.getpid()
    with self._zip.open(self.files[i]) as f:
      return io.BytesIO(f.read())


def open_image_source(path: str | os.PathLike, resolution: int) -> ImageFileSource:
  """A :class:`ZipImageSource` for a ``.zip`` file, else an :class:`ImageFolderSource`."""
  if str(path).lower().endswith(".zip") and os.path.isfile(path):
    return ZipImageSource(path, resolution)
  return ImageFolderSource(path, resolution)
