"""Launch scripts parse (bash -n) and pass shellcheck where it is installed."""

import pathlib
import shutil
import subprocess

import pytest

from jaxspatial.training import distributed

SCRIPTS = sorted(p for p in (pathlib.Path(__file__).resolve().parents[1] / "launch").iterdir()
                 if p.suffix in (".sh", ".sbatch"))


def test_there_are_launch_scripts():
  assert {p.name for p in SCRIPTS} >= {"tpu_vm.sh", "slurm_gpu.sbatch"}


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_bash_syntax(script):
  out = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
  assert out.returncode == 0, out.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_shellcheck(script):
  out = subprocess.run(["shellcheck", "-s", "bash", str(script)], capture_output=True, text=True)
  assert out.returncode == 0, out.stdout


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_usage_without_arguments_exits_2(script):
  out = subprocess.run(["bash", str(script)], capture_output=True, text=True)
  assert out.returncode == 2


def test_environment_detection():
  assert not distributed.environment_is_multiprocess({})
  assert distributed.environment_is_multiprocess({"TPU_WORKER_HOSTNAMES": "a,b"})
  assert not distributed.environment_is_multiprocess({"TPU_WORKER_HOSTNAMES": "a"})
  assert distributed.environment_is_multiprocess({"SLURM_NTASKS": "2", "SLURM_JOB_ID": "7"})
  assert not distributed.environment_is_multiprocess({"SLURM_NTASKS": "1", "SLURM_JOB_ID": "7"})
