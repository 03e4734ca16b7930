"""The speed benchmarks of issue 20: rosinality side by side, the op-kind profile, the device table."""

import jax
import jax.numpy as jnp
import pytest

from jaxspatial import families
from jaxspatial import models
from jaxspatial.benchmarks import augment as augment_bench
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
  assert r["GFLOP/s"] == pytest.approx(1e3 * r["TFLOP/s"], rel=0.01)   # the shared columns
  assert r["% of peak"].endswith("%")
  state_gib = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state)) / 2 ** 30
  assert r["peak_mem_GiB"] >= 0.99 * state_gib, (r["peak_mem_GiB"], state_gib)


def test_a_bench_tables_gflops_are_its_compiled_flops_over_its_time_against_the_printed_peak(
    capsys):
  """Issue 37, point 2, on the smallest table (bench conv_transpose at batch 1): the rate is
  recomputed here from XLA's cost analysis of the three programs each row times and the
  row's own times, and the share of the peak from the peak line the run printed."""
  import re
  from jaxspatial import benchmarks
  from jaxspatial.benchmarks import layers as layer_bench
  from jaxspatial.models import layers
  benchmarks._PEAK.clear()                              # a fresh run: the peak is measured
  rows = layer_bench.bench_conv_transpose(batch=1)
  layer_bench.bench_conv_transpose(batch=1)             # a second table: the same peak
  out = capsys.readouterr().out
  peaks = re.findall(r"^peak: ([\d.]+) GFLOP/s \(float32 2048x2048 matmul on .*, measured in "
                     r"this run\)$", out, re.M)
  assert len(peaks) == 1, out
  peak = float(peaks[0])
  impls = {"lhs_dilation": layers.conv_transpose_2x_reference,
           "sub-pixel phases": layers.conv_transpose_2x}
  shapes = iter([(8, 64, 64)] * 2 + [(16, 64, 32)] * 2)
  for r in rows:
    size, cin, cout = next(shapes)
    x = jax.random.normal(jax.random.key(0), (1, size, size, cin))
    w = jax.random.normal(jax.random.key(1), (3, 3, cin, cout))
    f = impls[r["impl"]]
    loss = lambda x, w, f=f: jnp.sum(jnp.sin(f(x, w)))
    flops = 0.0
    for fn in (f, jax.grad(loss, 1), jax.grad(loss, 0)):
      cost = jax.jit(fn).lower(x, w).compile().cost_analysis()
      flops += (cost[0] if isinstance(cost, (list, tuple)) else cost)["flops"]
    seconds = (r["fwd_ms"] + r["grad_w_ms"] + r["grad_x_ms"]) / 1e3
    assert r["GFLOP/s"] == pytest.approx(flops / seconds / 1e9, rel=2e-3), r
    assert float(r["% of peak"].rstrip("%")) == pytest.approx(100 * r["GFLOP/s"] / peak,
                                                               rel=0.01, abs=0.06), r


def test_a_table_without_a_flop_rate_says_why_in_its_note(capsys):
  from jaxspatial.benchmarks import no_flop_rate, print_table
  print_table([{"bench": "a", **no_flop_rate("data loading: no XLA program")},
               {"bench": "b", **no_flop_rate("data loading: no XLA program")}])
  lines = capsys.readouterr().out.splitlines()
  assert lines[0] == "| bench | GFLOP/s | % of peak |"
  assert lines[2] == "| a | n/a | n/a |"
  assert lines[4:] == ["note: data loading: no XLA program"]


@pytest.mark.parametrize("preset", augment_bench.PRESETS)
def test_augment_bench_compares_configs_that_differ_only_in_the_pipe(preset):
  plain, ada = (augment_bench._config(preset, 2, kind, 0.6).to_dict() for kind in ("none", "fixed"))
  differ = {(a, b) for a in plain if isinstance(plain[a], dict)
            for b in plain[a] if plain[a][b] != ada[a][b]}
  differ |= {a for a in plain if not isinstance(plain[a], dict) and plain[a] != ada[a]}
  assert differ == {("augment", "kind"), ("augment", "p")}
  assert plain["batch_size"] == 2 and plain["model"]["resolution"] == 256


def test_augment_bench_rejects_bad_flags():
  with pytest.raises(UserError, match="--p lie in"):
    augment_bench.main(["--p", "1.5"])
