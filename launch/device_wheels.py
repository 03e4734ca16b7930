"""The wheels that the GPU machine's image lacks, for launch/device_check.sh (issue 37, point 6).

The device machines (Python 3.12, jax 0.11.2 with CUDA, flax, optax, orbax-checkpoint, chex,
...: launch/gpu_image_packages.txt) reach no package registry, so whatever our runtime
dependencies (pyproject.toml) need beyond the image travels as a folder of wheels.

    python launch/device_wheels.py check              # offline: what an install would add
    python launch/device_wheels.py lock               # network: re-resolve device_wheels.txt
    python launch/device_wheels.py download DIR       # network: the listed wheels into DIR

``lock`` downloads each missing package's cp312 manylinux (or pure-Python) wheel with
``pip download --no-deps``, reads its ``Requires-Dist`` (markers evaluated for CPython 3.12 on
x86-64 Linux), and follows them until every requirement is either in the image or pinned in
launch/device_wheels.txt, which records each pin's requirement names so that ``check`` (and
tests/test_device_wheels.py) can repeat the resolution offline. An extra of an image package
(grain needs ``etils[epath]``) is resolved from that package's newest wheel metadata, since the
image's exact version of most packages is not documented. ``download`` fetches exactly the
pinned files, plus setuptools for building this package on the machine (pip's build
isolation installs it from the same folder).
"""

from __future__ import annotations

import argparse
import pathlib
import re
import subprocess
import sys
import tempfile
import tomllib
import zipfile

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
IMAGE_LIST = HERE / "gpu_image_packages.txt"
WHEEL_LIST = HERE / "device_wheels.txt"
PYTHON = "3.12"
# What the machine's Python reports for environment markers.
MARKER_ENV = {"python_version": PYTHON, "python_full_version": "3.12.3",
              "implementation_name": "cpython", "platform_python_implementation": "CPython",
              "sys_platform": "linux", "platform_system": "Linux", "os_name": "posix",
              "platform_machine": "x86_64"}
PLATFORMS = ["manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_27_x86_64",
             "manylinux_2_28_x86_64", "manylinux_2_24_x86_64", "manylinux_2_31_x86_64",
             "manylinux_2_34_x86_64", "manylinux_2_35_x86_64", "manylinux1_x86_64"]
BUILD_REQUIREMENTS = ["setuptools>=77"]      # pyproject [build-system]; pip's isolated build


def runtime_requirements(pyproject: pathlib.Path = REPO / "pyproject.toml") -> list[Requirement]:
  """``[project] dependencies`` of pyproject.toml (no extras: the device needs none)."""
  data = tomllib.loads(pyproject.read_text())
  return [Requirement(r) for r in data["project"]["dependencies"]]


def image_packages(path: pathlib.Path = IMAGE_LIST) -> dict[str, str]:
  """canonical name -> version ('*' where the image's version is not documented)."""
  out = {}
  for line in path.read_text().splitlines():
    line = line.split("#", 1)[0].strip()
    if line:
      name, version = line.split()
      out[canonicalize_name(name)] = version
  return out


def parse_wheel_list(path: pathlib.Path = WHEEL_LIST) -> dict[str, dict]:
  """key -> {"version", "file", "bytes", "requires"} from device_wheels.txt.

  A line is ``NAME==VERSION FILE BYTES REQUIRES`` (a wheel to carry) or ``NAME[EXTRAS] image
  - 0 REQUIRES`` (an image package's extra); REQUIRES is requirement strings
  joined by '|' (no spaces) or '-'.
  """
  out = {}
  for line in path.read_text().splitlines():
    line = line.split("#", 1)[0].strip()
    if not line:
      continue
    spec, version_or_file, *rest = line.split()
    if spec.count("==") == 1:
      name, version = spec.split("==")
      file, size, requires = version_or_file, int(rest[0]), rest[1]
    else:
      name, version, file, size, requires = spec, "image", None, 0, rest[-1]
    key = (canonicalize_name(name.split("[")[0]) +
           (name[name.index("["):] if "[" in name else ""))
    out[key] = {"version": version, "file": file, "bytes": size,
                "requires": [] if requires == "-" else requires.split("|")}
  return out


def _applies(req: Requirement, extras: frozenset[str]) -> bool:
  if req.marker is None:
    return True
  if any(req.marker.evaluate({**MARKER_ENV, "extra": e}) for e in extras):
    return True
  return req.marker.evaluate({**MARKER_ENV, "extra": ""})


def _version_ok(req: Requirement, version: str) -> bool:
  return version in ("*", "image") or req.specifier.contains(Version(version), prereleases=True)


def resolve(requirements: list[Requirement], image: dict[str, str],
            wheels: dict[str, dict]) -> tuple[list[str], list[str]]:
  """(wheels an install adds, problems): follow ``requirements`` through the image and the
  wheel list. A problem is a requirement neither the image nor the list provides, or whose
  pinned or documented version is outside its specifier."""
  install, problems, seen = [], [], set()
  queue = [(r, "pyproject.toml") for r in requirements]
  while queue:
    req, why = queue.pop(0)
    name = canonicalize_name(req.name)
    key = (name, str(req.specifier), tuple(sorted(req.extras)))
    if key in seen:
      continue
    seen.add(key)
    if req.marker is not None and not req.marker.evaluate({**MARKER_ENV, "extra": ""}):
      continue
    if name in image:
      if not _version_ok(req, image[name]):
        problems.append(f"{req} (needed by {why}): the image has {name} {image[name]}")
      if req.extras:
        extra = f"{name}[{','.join(sorted(req.extras))}]"
        if extra not in wheels:
          problems.append(f"{req} (needed by {why}): the extras' requirements of image "
                          f"package {name} are not resolved in {WHEEL_LIST.name}")
        else:
          queue += [(Requirement(r), extra) for r in wheels[extra]["requires"]]
      continue
    if name not in wheels:
      problems.append(f"{req} (needed by {why}): neither in the GPU image nor in "
                      f"{WHEEL_LIST.name}")
      continue
    pin = wheels[name]
    if not _version_ok(req, pin["version"]):
      problems.append(f"{req} (needed by {why}): {WHEEL_LIST.name} pins {pin['version']}")
    if name not in install:
      install.append(name)
    queue += [(Requirement(r), name) for r in pin["requires"]]
  return install, problems


# ------------------------------------------------------------------ network: lock, download

def _pip_download(spec: str, dest: pathlib.Path) -> pathlib.Path:
  before = set(dest.iterdir())
  cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
         "--python-version", PYTHON, "--implementation", "cp", "--abi", "cp312", "--abi", "abi3",
         "--abi", "none", "-d", str(dest), spec]
  for p in PLATFORMS + ["any"]:
    cmd += ["--platform", p]
  if subprocess.run(cmd, stderr=subprocess.DEVNULL).returncode != 0:
    # No wheel on the index (promise, a tensorflow-datasets requirement, is an sdist only):
    # build it here, which is right only for a pure-Python one (checked below).
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest),
                    spec], check=True, stderr=subprocess.DEVNULL)
  new = sorted(set(dest.iterdir()) - before)
  if new and not new[0].name.endswith(("-none-any.whl", "-abi3-" + PLATFORMS[0] + ".whl")) \
     and "cp312" not in new[0].name:
    raise SystemExit(f"{new[0].name}: not installable on CPython {PYTHON} x86-64 Linux")
  if not new:                                      # already there from an earlier spec
    name = canonicalize_name(Requirement(spec).name).replace("-", "_")
    new = [p for p in dest.iterdir()
           if canonicalize_name(p.name.split("-")[0]).replace("-", "_") == name]
  return new[0]


def _requires(wheel: pathlib.Path, extras: frozenset[str] = frozenset()) -> list[str]:
  with zipfile.ZipFile(wheel) as z:
    meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
    lines = z.read(meta).decode().splitlines()
  reqs = [Requirement(line.split(":", 1)[1].strip()) for line in lines
          if line.startswith("Requires-Dist:")]
  keep = [r for r in reqs if (_applies(r, extras) if extras else
                              r.marker is None or r.marker.evaluate({**MARKER_ENV, "extra": ""}))]
  if extras:                                       # only what the extras add
    keep = [r for r in keep if r.marker is not None and "extra" in str(r.marker)]
  out = []
  for r in keep:
    r.marker = None
    out.append(re.sub(r"\s+", "", str(r)))
  return out


def lock(path: pathlib.Path = WHEEL_LIST) -> None:
  image = image_packages()
  lines: dict[str, str] = {}
  with tempfile.TemporaryDirectory() as tmp:
    dest = pathlib.Path(tmp)
    queue = list(runtime_requirements())
    seen = set()
    while queue:
      req = queue.pop(0)
      name = canonicalize_name(req.name)
      extras = frozenset(req.extras)
      key = name + (f"[{','.join(sorted(extras))}]" if extras and name in image else "")
      if key in seen or (req.marker is not None and
                         not req.marker.evaluate({**MARKER_ENV, "extra": ""})):
        continue
      seen.add(key)
      if name in image:
        if extras:
          wheel = _pip_download(name, dest)
          requires = _requires(wheel, extras)
          lines[key] = f"{key} image - 0 {'|'.join(requires) or '-'}"
          queue += [Requirement(r) for r in requires]
        continue
      wheel = _pip_download(str(Requirement(f"{req.name}{req.specifier}")), dest)
      version = wheel.name.split("-")[1]
      requires = _requires(wheel) + [r for e in extras for r in _requires(wheel, frozenset([e]))]
      lines[key] = (f"{name}=={version} {wheel.name} {wheel.stat().st_size} "
                    f"{'|'.join(requires) or '-'}")
      queue += [Requirement(r) for r in requires]
  header = ("# Wheels the GPU image lacks (launch/device_wheels.py lock; do not edit by hand).\n"
            "# NAME==VERSION FILE BYTES REQUIRES  or  NAME[EXTRAS] image - 0 REQUIRES (joined by '|')\n")
  path.write_text(header + "".join(lines[k] + "\n" for k in sorted(lines)))
  print(f"wrote {path} ({len(lines)} lines)")


def download(dest: pathlib.Path) -> None:
  dest.mkdir(parents=True, exist_ok=True)
  for name, pin in parse_wheel_list().items():
    if pin["file"] and not (dest / pin["file"]).exists():
      got = _pip_download(f"{name}=={pin['version']}", dest)
      if got.name != pin["file"]:
        raise SystemExit(f"{name}: pip chose {got.name}, the list pins {pin['file']}: "
                         "run `python launch/device_wheels.py lock`")
  for spec in BUILD_REQUIREMENTS:
    _pip_download(spec, dest)
  total = sum(p.stat().st_size for p in dest.glob("*.whl"))
  print(f"{dest}: {len(list(dest.glob('*.whl')))} wheels, {total / 2 ** 20:.1f} MiB")


def main(argv: list[str] | None = None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  sub = p.add_subparsers(dest="command", required=True)
  sub.add_parser("check", help="offline: resolve pyproject's dependencies against the lists")
  sub.add_parser("lock", help="re-resolve launch/device_wheels.txt (network)")
  d = sub.add_parser("download", help="download the listed wheels (network)")
  d.add_argument("dest", type=pathlib.Path)
  args = p.parse_args(argv)
  if args.command == "lock":
    lock()
  elif args.command == "download":
    download(args.dest)
  else:
    install, problems = resolve(runtime_requirements(), image_packages(), parse_wheel_list())
    wheels = parse_wheel_list()
    print("would install from wheels: " + ", ".join(f"{n}=={wheels[n]['version']}"
                                                     for n in install))
    print(f"({sum(wheels[n]['bytes'] for n in install) / 2 ** 20:.1f} MiB); everything else "
          "from the GPU image")
    for problem in problems:
      print("missing: " + problem)
    return 1 if problems else 0
  return 0


if __name__ == "__main__":
  sys.exit(main())
