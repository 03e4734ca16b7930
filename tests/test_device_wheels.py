"""The wheel set that launch/device_check.sh installs on the GPU machine is complete (issue 37,
point 6): pyproject.toml's runtime dependencies, followed through the wheels' own
requirements, resolve against the GPU image's package list plus launch/device_wheels.txt.
Offline: it checks the committed lists, not the wheel files."""

import importlib.util
import pathlib

import pytest
from packaging.requirements import Requirement

from shared_paths import REPO

_spec = importlib.util.spec_from_file_location("device_wheels", REPO / "launch" / "device_wheels.py")
device_wheels = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(device_wheels)


@pytest.fixture(scope="module")
def lists():
  return (device_wheels.runtime_requirements(), device_wheels.image_packages(),
          device_wheels.parse_wheel_list())


def test_the_dry_run_resolves_every_runtime_dependency(lists, capsys):
  requirements, image, wheels = lists
  install, problems = device_wheels.resolve(requirements, image, wheels)
  assert problems == []
  # What the GPU image lacks of ours travels; what it has does not.
  assert {"grain", "ml-collections", "tensorflow-datasets", "tensorboardx"} <= set(install)
  assert not {"jax", "flax", "optax", "orbax-checkpoint", "chex", "numpy"} & set(install)
  # Every pinned wheel is needed (no stale pins) and fits the device's 64 MiB carry with the
  # ~14 MB of parity oracles and the checkout beside it.
  assert set(install) == {k for k, v in wheels.items() if v["file"]}
  assert sum(wheels[n]["bytes"] for n in install) < 30 * 2 ** 20
  assert device_wheels.main(["check"]) == 0
  out = capsys.readouterr().out
  assert "would install from wheels: grain==" in out and "missing" not in out


def test_the_image_list_holds_what_the_device_notes_document(lists):
  _, image, _ = lists
  assert image["python"].startswith("3.12")
  assert image["jax"] == image["jaxlib"] == "0.11.2"
  assert {"jax-cuda13-plugin", "flax", "optax", "orbax-checkpoint", "chex", "torch",
          "pytest", "pip", "setuptools"} <= set(image)


@pytest.mark.parametrize("drop", ["grain", "promise", "googleapis-common-protos"])
def test_a_package_neither_preinstalled_nor_listed_fails(lists, drop):
  """A direct dependency (grain) and transitive ones, two and three levels down
  (tensorflow-datasets -> promise; -> tensorflow-metadata -> googleapis-common-protos)."""
  requirements, image, wheels = lists
  _, problems = device_wheels.resolve(requirements, image,
                                      {k: v for k, v in wheels.items() if k != drop})
  assert len(problems) == 1 and problems[0].startswith(drop) and "neither" in problems[0]


def test_a_new_runtime_dependency_fails_until_it_is_listed(lists):
  requirements, image, wheels = lists
  _, problems = device_wheels.resolve(requirements + [Requirement("einx>=0.3")], image, wheels)
  assert [p.split()[0] for p in problems] == ["einx>=0.3"]


def test_a_version_outside_the_requirement_fails(lists):
  requirements, image, wheels = lists
  _, problems = device_wheels.resolve(requirements + [Requirement("jax>=0.12")], image, wheels)
  assert problems == ["jax>=0.12 (needed by pyproject.toml): the image has jax 0.11.2"]
  pins = dict(wheels, grain=dict(wheels["grain"], version="0.2.1"))
  _, problems = device_wheels.resolve(requirements, image, pins)
  assert problems and "grain>=0.2.10" in problems[0] and "pins 0.2.1" in problems[0]


def test_an_image_packages_extras_are_followed(lists):
  """grain needs etils[epath,epy]: etils is in the image, its extras' requirements (fsspec,
  zipp, ...) must be too, or travel."""
  requirements, image, wheels = lists
  _, problems = device_wheels.resolve(requirements, {k: v for k, v in image.items()
                                                     if k != "zipp"}, wheels)
  assert problems and all(p.startswith("zipp") for p in problems)


def test_markers_are_evaluated_for_the_machines_python(lists):
  _, image, wheels = lists
  install, problems = device_wheels.resolve(
      [Requirement('tomli>=2; python_version < "3.11"'),
       Requirement('grain; sys_platform == "linux"')], image, wheels)
  assert problems == [] and "tomli" not in install and "grain" in install
