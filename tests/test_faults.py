"""The faults of long training runs (docs/reliability.md): each test fails without its handling.

One tiny StyleGAN2 run (16 px, one device, 10 steps, a checkpoint every step) on an image folder
holding one corrupt file is the reference; every in-process run shares its compiled
:class:`~jaxspatial.training.loop.Trainer`, so only the reference compiles. The repeated-SIGKILL
test runs the real command in subprocesses (the compilation cache spares them compiling).
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from PIL import Image

from jaxspatial import checkpoint
from jaxspatial.cli import UserError
from jaxspatial.data import shapes
from jaxspatial.training import loop
from jaxspatial.training import workdir as workdir_lib
from helpers import load_config

REPO = pathlib.Path(__file__).resolve().parents[1]
STEPS = 10
# Relaunches killed at random moments in the SIGKILL test: each costs a command start-up (~40 s
# on the 2-core CI machine), which is why it is 3 and not more.
KILLS = 3
# The same run as overrides of configs/stylegan2.py:tiny (the subprocesses' command line).
OVERRIDES = {"total_steps": STEPS, "checkpoint_every": 1, "log_every": 1, "sample_every": 0,
             "keep_checkpoints": 3, "mesh.data": 1, "loss.pl_weight": 0.0, "loss.r1_every": 2,
             "data.source": "folder", "data.prefetch": 0}


def _config(folder: pathlib.Path):
  config = load_config("tiny")
  config.update_from_flattened_dict({**OVERRIDES, "data.path": str(folder)})
  return config


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> pathlib.Path:
  """Eleven shapes scenes as PNGs and one file that is not an image."""
  root = tmp_path_factory.mktemp("faults_images")
  scenes = shapes.ShapesSource(16)
  for i in range(11):
    Image.fromarray(np.asarray(scenes[i]["image"], np.uint8)).save(root / f"{i:02d}.png")
  (root / "05b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64))
  return root


@pytest.fixture(scope="module")
def trainer(folder):
  config = _config(folder)
  from jaxspatial.training import config_lib
  config_lib.validate(config)
  return loop.Trainer(config)


def _train(trainer, workdir) -> tuple[str, str]:
  """``loop.train`` in this process: (stdout, stderr)."""
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    loop.train(trainer.config, workdir, trainer=trainer)
  return out.getvalue(), err.getvalue()


def _params(workdir, step=STEPS):
  return jax.tree.leaves(checkpoint.restore_models(workdir, step))


def _assert_same_params(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def reference(trainer, tmp_path_factory):
  """The uninterrupted run: (workdir, final parameters, stdout, stderr)."""
  workdir = tmp_path_factory.mktemp("faults_reference")
  out, err = _train(trainer, workdir)
  return workdir, _params(workdir), out, err


def _steps(workdir) -> list[int]:
  return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


# ------------------------------------------------------------------ corrupt images


def test_corrupt_images_are_skipped_counted_and_warned_once(reference):
  workdir, _, _, err = reference
  rows = [json.loads(l) for l in (workdir / "metrics.jsonl").read_text().splitlines()]
  counts = [r["corrupt_images"] for r in rows]
  assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
  assert counts == sorted(counts) and counts[-1] >= 1      # 80 draws from 12 files
  warnings = [l for l in err.splitlines() if l.startswith("warning: ")]
  assert len(warnings) == 1 and "unreadable image" in warnings[0], err


# ------------------------------------------------------------------ damaged checkpoint


@pytest.mark.parametrize("damage", ["truncated", "removed"])
def test_damaged_latest_checkpoint_falls_back_to_the_newest_intact(reference, trainer, damage,
                                                                   tmp_path):
  source, final, _, _ = reference
  workdir = tmp_path / "run"
  shutil.copytree(source, workdir)
  assert _steps(workdir) == [STEPS - 2, STEPS - 1, STEPS]
  step_dir = workdir / "checkpoints" / str(STEPS)
  files = sorted((p for p in step_dir.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
  victim = files[-1]        # the largest: array data, as a half-finished copy leaves it
  if damage == "truncated":
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
  else:
    victim.unlink()
  kept = sorted(str(p.relative_to(step_dir)) for p in step_dir.rglob("*") if p.is_file())

  out, _ = _train(trainer, workdir)

  lines = [l for l in out.splitlines() if "cannot be restored" in l]
  assert len(lines) == 1 and f"resuming from step {STEPS - 1}" in lines[0], out
  moved = workdir / workdir_lib.DAMAGED / str(STEPS)
  assert sorted(str(p.relative_to(moved)) for p in moved.rglob("*") if p.is_file()) == kept
  _assert_same_params(_params(workdir), final)      # step 10 retrained from step 9


def test_no_restorable_checkpoint_moves_nothing(reference, trainer, tmp_path):
  """Every step failing alike (here: all truncated) is not 'the newest is damaged'."""
  workdir = tmp_path / "run"
  shutil.copytree(reference[0], workdir)
  for step in _steps(workdir):
    for p in (workdir / "checkpoints" / str(step)).rglob("*"):
      if p.is_file() and p.stat().st_size > 1000:
        p.write_bytes(b"")
  with pytest.raises(UserError, match="no checkpoint in .* can be restored"):
    _train(trainer, workdir)
  assert _steps(workdir) == [STEPS - 2, STEPS - 1, STEPS]
  assert not (workdir / workdir_lib.DAMAGED).exists()


# ------------------------------------------------------------------ full disk


def test_full_disk_during_a_save_is_one_error_and_a_relaunch_resumes(reference, trainer,
                                                                      tmp_path, monkeypatch):
  from orbax.checkpoint._src.handlers import json_checkpoint_handler as json_handler
  original = json_handler.JsonCheckpointHandler._save_fn

  async def full_at_step_3(self, x, directory):
    if directory.parent.name.startswith("3."):          # 3.orbax-checkpoint-tmp-*/<item>
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(directory))
    return await original(self, x, directory)

  workdir = tmp_path / "run"
  monkeypatch.setattr(json_handler.JsonCheckpointHandler, "_save_fn", full_at_step_3)
  with pytest.raises(UserError, match=r"no space left on device .* checkpoints \[1, 2\] in "):
    _train(trainer, workdir)
  assert _steps(workdir) == [1, 2]
  assert len(_params(workdir, 2)) == len(reference[1])      # intact: they restore
  monkeypatch.setattr(json_handler.JsonCheckpointHandler, "_save_fn", original)
  out, _ = _train(trainer, workdir)
  assert "resuming from step 2" in out
  _assert_same_params(_params(workdir), reference[1])


# ------------------------------------------------------------------ a finished or redirected run


def test_a_finished_run_says_there_is_nothing_to_do(reference, trainer, tmp_path):
  source, final, _, _ = reference
  workdir = tmp_path / "run"
  shutil.copytree(source, workdir)
  out, _ = _train(trainer, workdir)
  assert "has finished" in out and "nothing to do" in out and "resuming" not in out, out
  _assert_same_params(_params(workdir), final)


def test_training_without_a_terminal_prints_progress_lines(reference, trainer, tmp_path,
                                                           monkeypatch):
  """Output redirected (no bar): the line of a logged step names the step, kimg, images/s and
  the losses; JAXSPATIAL_PROGRESS_SECONDS=0 prints one per logged step instead of every 30 s."""
  source, _, _, _ = reference
  workdir = tmp_path / "run"
  shutil.copytree(source, workdir)
  shutil.rmtree(workdir / "checkpoints" / str(STEPS))        # one step left to train
  monkeypatch.delenv("JAXSPATIAL_NO_PROGRESS", raising=False)
  monkeypatch.setenv("JAXSPATIAL_PROGRESS_SECONDS", "0")
  out, _ = _train(trainer, workdir)
  lines = [l for l in out.splitlines() if l.startswith("train: ")]
  assert len(lines) == 2 and lines[1].endswith("(finished)"), out
  assert re.match(rf"train: {STEPS}/{STEPS} step \(100%\), kimg=0\.\d, img_s=[\d.]+, "
                  r"d_loss=[-\d.e]+, g_loss=[-\d.e]+, \d+s elapsed", lines[0]), lines[0]


# ------------------------------------------------------------------ NaN / Inf


def test_non_finite_gradients_do_not_reach_the_parameters(trainer):
  """stylegan2-ada's choice: NaN gradients become 0, so the parameters stay finite."""
  trainer.initialize()
  bad = np.full((8, 16, 16, 3), np.nan, np.float32)
  bad[:4] = np.inf
  metrics = jax.device_get(trainer.step(trainer.global_batch({"image": bad})))
  assert not np.isfinite(metrics["d_loss"])            # the fault did happen ...
  leaves = jax.tree.leaves(jax.device_get(trainer.state))
  assert all(np.isfinite(np.asarray(x, np.float64)).all() for x in leaves
             if np.issubdtype(np.asarray(x).dtype, np.number))   # ... and did not spread


# ------------------------------------------------------------------ two runs, one workdir


def test_a_second_run_on_a_workdir_refuses_and_a_killed_holder_leaves_no_stale_lock(
    trainer, tmp_path):
  workdir = tmp_path / "run"
  holder = subprocess.Popen(
      [sys.executable, "-c", "import sys, time; from jaxspatial.training import workdir; "
       "lock = workdir.Lock(sys.argv[1]).__enter__(); print('locked', flush=True); "
       "time.sleep(600)",
       str(workdir)], cwd=REPO, stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(UserError, match=rf"in use by another train run \(pid {holder.pid} on "):
      _train(trainer, workdir)
    assert sorted(p.name for p in workdir.iterdir()) == [workdir_lib.LOCK_FILE]
  finally:
    holder.kill()
    holder.wait()
  with workdir_lib.Lock(workdir):      # SIGKILL released it
    pass


# ------------------------------------------------------------------ repeated SIGKILL


@pytest.mark.slow
def test_repeated_sigkill_at_random_moments_ends_with_the_uninterrupted_parameters(
    reference, folder, tmp_path):
  rng = np.random.default_rng(17)
  workdir = tmp_path / "run"
  command = [sys.executable, "-m", "jaxspatial.train", "--config", "configs/stylegan2.py:tiny",
             "--workdir", str(workdir), f"--config.data.path={folder}",
             *(f"--config.{k}={v}" for k, v in OVERRIDES.items())]
  env = dict(os.environ)    # this session's XLA_FLAGS: the same numerics as the reference
  newest = lambda: max(_steps(workdir), default=0) if (workdir / "checkpoints").is_dir() else 0
  kills = 0
  for _ in range(KILLS):
    committed = newest()
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    # Kill at a random moment after this launch has committed a checkpoint of its own (so the
    # next one must resume from it): mid-step, mid-save, between steps ...
    while proc.poll() is None and time.time() < deadline and newest() <= committed:
      time.sleep(0.05)
    time.sleep(rng.uniform(0.0, 1.0))
    if proc.poll() is not None:
      break
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kills += 1
  final = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
  assert final.returncode == 0, final.stderr[-2000:]
  assert kills == KILLS, f"only {kills} kills landed before the run finished"
  resumed = re.search(r"resuming from step (\d+)", final.stdout)
  assert resumed and int(resumed.group(1)) >= KILLS, final.stdout   # resumed, not retrained
  _assert_same_params(_params(workdir), reference[1])
