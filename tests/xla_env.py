"""The XLA settings of the test session (tests/conftest.py) and of the commands tests start.

Besides the simulated device count, the tests compile with XLA:CPU's older elementwise-fusion
emitter (``--xla_cpu_use_fusion_emitters=false``). The suite compiles hundreds of tiny
programs and runs each a few times, and a GAN step of the ``tiny`` preset holds ~1250 fusions,
each compiled by LLVM. Measured cold on the 2-core CI machine (2026-12-07, one run each), the
flag cut tests/test_drag.py + test_ssn_model.py + test_spatialgan_gradcam.py from 122 s to
92 s; the parity tests against PyTorch pass unchanged. XLA aborts on a flag it does not know, so
the flag is added only for the jaxlib series it was measured on; ``XLA_FLAGS`` set in the
environment replaces all of this.
"""

import importlib.metadata


def _compile_flags() -> str:
  major_minor = tuple(int(p) for p in importlib.metadata.version("jaxlib").split(".")[:2])
  return " --xla_cpu_use_fusion_emitters=false" if major_minor == (0, 10) else ""


COMPILE_FLAGS = _compile_flags()


def xla_flags(devices: int) -> str:
  """``XLA_FLAGS`` for a process with ``devices`` simulated CPU devices."""
  return f"--xla_force_host_platform_device_count={devices}{COMPILE_FLAGS}"
