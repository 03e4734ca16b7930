"""The speed benchmarks of issue 20: rosinality side by side, the op-kind profile, the device table."""

import jax
import jax.numpy as jnp
import pytest

from jaxspatial import families
from jaxspatial import models
from jaxspatial.benchmarks import device, profile, rosinality, time_interleaved
from jaxspatial.cli import UserError


def test_interleaved_timing_alternates_the_programs_and_keeps_each_ones_best_call():
  calls = []
  def program(name):
    def fn(x):
      calls.append(name)
      return x
    return fn
  best = time_interleaved({"a": (program("a"), (jnp.ones(2),)),
                           "b": (program("b"), (jnp.ones(2),))}, rounds=3, per_round=2)
  assert calls == ["a", "b"] + ["a", "a", "b", "b"] * 3     # a warm-up call, then in turn
  assert set(best) == {"a", "b"} and all(0 < v < 1 for v in best.values())


def test_rosinality_bench_skips_without_a_checkout(capsys):
  assert rosinality.bench_rosinality(None) == []
  assert "skipped: pass --rosinality PATH" in capsys.readouterr().out


def test_rosinality_bench_rejects_a_folder_that_is_not_a_checkout(tmp_path):
  with pytest.raises(UserError, match="not a rosinality/stylegan2-pytorch checkout"):
    rosinality.bench_rosinality(str(tmp_path))


def test_rosinality_import_bypasses_its_cuda_extension_build(tmp_path):
  pytest.importorskip("torch")
  (tmp_path / "op").mkdir()
  (tmp_path / "op" / "__init__.py").write_text(
      "from torch.utils.cpp_extension import load\n"
      "fused = load('fused', sources=['fused_bias_act_kernel.cu'])\n")
  (tmp_path / "model.py").write_text("import op\nKERNELS = op.fused\n")
  module = rosinality.import_rosinality(tmp_path)
  assert type(module.KERNELS).__name__ == "unbuilt_fused"       # nothing was compiled
  from torch.utils import cpp_extension
  assert cpp_extension.load.__name__ == "load"                   # and the hook is restored


def _tiny_gan():
  cfg = models.stylegan2_model_config(16, z_dim=16, w_dim=16, n_mlp=2, channel_base=256,
                                      channel_max=16)
  g, d = families.build_generator(cfg), families.build_discriminator(cfg)
  gv = g.init(jax.random.key(0), jnp.zeros((1, 16)))
  dv = d.init(jax.random.key(1), jnp.zeros((1, 16, 16, 3)))
  return g, d, gv, dv


def test_profile_splits_kernel_time_by_network_pass_and_kind():
  g, d, gv, dv = _tiny_gan()
  z = jnp.ones((4, 16))
  loss = lambda gv, dv, z: d.apply(dv, g.apply(gv, z)).sum()
  compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(gv, dv, z).compile()
  kinds = profile.classify(compiled.as_text())
  seen = set(kinds.values())
  for expected in [("G", "forward", "conv"), ("G", "backward", "conv weight grad"),
                   ("D", "backward", "conv weight grad"), ("D", "forward", "FIR"),
                   ("G", "forward", "matmul")]:
    assert expected in seen, expected
  rows = profile.profile(compiled, (gv, dv, z), calls=1, label="tiny")
  total = rows[-1]
  assert total["network"] == "all" and total["ms/call"] > 0
  parts = rows[:-1]
  assert sum(r["ms/call"] for r in parts) == pytest.approx(total["ms/call"], abs=0.1 * len(parts))
  assert {r["network"] for r in parts} >= {"G", "D"}
  assert [r["ms/call"] for r in parts] == sorted((r["ms/call"] for r in parts), reverse=True)


def test_chip_peaks_come_from_the_device_kind():
  class Chip:
    def __init__(self, kind, platform="gpu"):
      self.device_kind, self.platform = kind, platform
  assert device.chip_peak_tflops(Chip("NVIDIA H200"))[0] == 989.0
  assert device.chip_peak_tflops(Chip("NVIDIA H100 PCIe"))[0] == 756.0
  assert device.chip_peak_tflops(Chip("TPU v5 lite", "tpu"))[0] == 197.0
  assert device.chip_peak_tflops(Chip("TPU v5p", "tpu"))[0] == 459.0


@pytest.mark.slow
def test_device_bench_reports_every_column():
  """One family: every row is built the same way (the family's config, ``loop.Trainer``, the
  plain phase), and each family's trainer has tests of its own. StyleGAN2's bf16 step is the
  one tests/test_mixed_precision.py compiles too; all three families cost ~2 more CI minutes."""
  rows = device.bench_device(families=("stylegan2",), steps=1)   # CPU: the tiny preset, bf16
  assert [r["family"] for r in rows] == ["stylegan2"]
  for r in rows:
    assert r["preset"] == "tiny" and r["dtype"] == "bfloat16" and r["losses_finite"]
    assert r["images/s"] > 0 and r["s/kimg"] == pytest.approx(1000 / r["images/s"], rel=0.05)
    assert r["s/kimg amortised"] >= r["s/kimg"]        # the regularisers only add work
    assert r["compile_s"] > 0 and r["utilisation"].endswith("%")
  # The columns against what they measure, each computed here on its own: the FLOPs of the
  # compiled plain step (the program the bench timed), the rate from them and the step time,
  # and a peak memory that holds at least the training state (an argument of the step).
  from jaxspatial.training import gan_step, loop
  from jaxspatial.training import state as state_lib
  (r,) = rows
  config = device.family_config("stylegan2", "tiny", 0, "bfloat16")
  plugin, (opt_g, opt_d) = loop.make_plugin(config), state_lib.make_optimizers(config)
  step = gan_step.make_train_step(config, plugin, opt_g, opt_d, gan_step.Phase(False, False))
  state = jax.eval_shape(lambda k: gan_step.init_state(config, plugin, opt_g, opt_d, k),
                         jax.random.key(0))
  res = config.model.resolution
  batch = {"image": jax.ShapeDtypeStruct((r["batch"], res, res, 3), jnp.float32)}
  cost = jax.jit(step).lower(state, batch).compile().cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  assert r["TFLOP/step"] == pytest.approx(cost["flops"] / 1e12, rel=0.02)
  steps_per_s = r["images/s"] / r["batch"]
  assert r["TFLOP/s"] == pytest.approx(r["TFLOP/step"] * steps_per_s, rel=0.02)
  state_gib = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state)) / 2 ** 30
  assert r["peak_mem_GiB"] >= 0.99 * state_gib, (r["peak_mem_GiB"], state_gib)
