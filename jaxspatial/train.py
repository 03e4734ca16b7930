r"""Train a GAN (StyleGAN2, SSN, SpatialGAN) or the latent regressor.

    python -m jaxspatial.train --config configs/stylegan2.py:demo --workdir runs/demo
    python -m jaxspatial.train --config configs/ssn.py:paper256 --workdir DIR \
        --config.data.source=folder --config.data.path=/data/ffhq.zip --config.batch_size=64

Re-running on a workdir that holds a checkpoint resumes from it; a larger
``--config.total_steps`` continues training to that step. Outputs in the workdir:
``checkpoints/`` (Orbax; ``js.load(workdir)`` opens it), ``samples/step_XXXXXX.png``,
``metrics.jsonl`` and ``tensorboard/``.
"""

from __future__ import annotations

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxspatial import cli, errors

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file and preset: configs/<model>.py[:tiny|demo|paper256]. "
    "Override any key with --config.KEY=VALUE.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, samples, logs).")
_COORDINATOR = flags.DEFINE_string(
    "coordinator", None, "HOST:PORT of process 0 for a multi-process run (TPU pod slices and "
    "Slurm are detected without it).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in a multi-process run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index, 0..N-1.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Join a multi-host run with jax's cluster auto-detection (Cloud TPU "
    "VM pod slices, Slurm); launch/ scripts pass it.")
_HEARTBEAT = flags.DEFINE_integer(
    "heartbeat_timeout", 100, "Seconds after which a dead peer fails a multi-process run.")


def _load_config():
  """The parsed config, or a one-line UserError for a missing file, bad preset or key."""
  if _CONFIG.value is None:
    raise errors.UserError("give --config configs/<model>.py[:preset] (see --help)")
  return _CONFIG.value


def _run() -> None:
  logging.set_verbosity(logging.WARNING)
  config = _load_config()
  if not _WORKDIR.value:
    raise errors.UserError("give --workdir DIR for checkpoints, samples and logs")
  from jaxspatial.training import distributed, loop
  try:
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                           _HEARTBEAT.value, auto=_DISTRIBUTED.value)
  except ValueError as e:
    raise errors.UserError(str(e)) from None
  loop.train(config, _WORKDIR.value)   # the family's trainer (jaxspatial.families)


def _last_line(e: BaseException) -> str:
  lines = [l.strip() for l in str(e).splitlines() if l.strip()]
  return lines[-1] if lines else type(e).__name__


def _key_text(e: BaseException) -> str:
  """ml_collections' unknown-key message as plain text on one line. It raises an AttributeError
  wrapping a KeyError, and ``str`` of a KeyError is the repr of its message, which printed
  escaped quotes and a literal ``\\n``: ``'\\'batchsize\\'\\nDid you mean ...'``."""
  while e.args and isinstance(e.args[0], BaseException):
    e = e.args[0]
  text = e.args[0] if isinstance(e, KeyError) and e.args and isinstance(e.args[0], str) else str(e)
  lines = [l.strip() for l in text.splitlines() if l.strip()]
  return "; ".join([lines[0], *(l[0].lower() + l[1:] for l in lines[1:])]) if lines else \
      type(e).__name__


def _parse_flags(argv: list[str]) -> None:
  """absl/ml_collections flag parsing with their errors (unreadable config file, unknown
  preset or key, bad value) turned into one-line UserErrors."""
  app.define_help_flags()
  try:
    flags.FLAGS(argv)
    config = _CONFIG.value     # config files load lazily: surface their errors here
    if config is not None:
      config.get("model")
  except SystemExit:
    raise
  except (KeyError, AttributeError) as e:
    raise errors.UserError(f"bad command line: no such config key {_key_text(e)}") from None
  except Exception as e:  # noqa: BLE001 - every parse failure is a user mistake here
    raise errors.UserError(f"bad command line: {_last_line(e)}") from None


def main(argv=None) -> None:
  def run():
    _parse_flags(list(argv or sys.argv))
    _run()
  cli.run(run)


if __name__ == "__main__":
  main()
