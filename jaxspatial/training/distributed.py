"""Multi-process start-up: ``jax.distributed.initialize`` from flags or the environment.

A pod slice or cluster runs the same program on every host (JAX's multi-controller
runtime). Explicit flags (``--coordinator HOST:PORT --num_processes N --process_id I``)
always win; otherwise Cloud TPU VM pod slices and Slurm jobs with more than one task are
detected from their environment and jax reads the details itself. On CPU the collectives
go over gloo (how the multi-process tests run on one machine).
"""

from __future__ import annotations

import os

import jax


def environment_is_multiprocess(environ=os.environ) -> bool:
  """True on a multi-host TPU VM slice or a Slurm job with several tasks."""
  hosts = environ.get("TPU_WORKER_HOSTNAMES", "")
  if "," in hosts:
    return True
  return int(environ.get("SLURM_NTASKS", "1") or 1) > 1 and "SLURM_JOB_ID" in environ


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, heartbeat_timeout_s: int = 100,
               auto: bool = False) -> bool:
  """Joins the distributed runtime when asked to or when the environment says so.

  ``auto`` forces jax's own cluster detection (Cloud TPU VM metadata, Slurm, ...) even
  where the environment variables checked here are absent; the TPU launcher passes it.

  Returns True when running multi-process. A peer that dies is noticed by the coordination
  service within ``heartbeat_timeout_s`` and the survivors exit with an error instead of
  waiting forever in a collective.
  """
  explicit = coordinator is not None
  if explicit and (num_processes is None or process_id is None):
    raise ValueError("--coordinator needs --num_processes and --process_id")
  if not explicit and not auto and not environment_is_multiprocess():
    return False
  jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU backend only
  if explicit:
    jax.distributed.initialize(coordinator, num_processes, process_id,
                               heartbeat_timeout_seconds=heartbeat_timeout_s)
  else:
    jax.distributed.initialize(heartbeat_timeout_seconds=heartbeat_timeout_s)
  return jax.process_count() > 1
