"""The conversion rule engine (jaxspatial.convert.rules) on its own: layouts, paths, errors."""

import re

import numpy as np
import pytest

from jaxspatial.convert import rules
from jaxspatial.models import layers


def test_each_layout_transform_is_undone_by_its_inverse_and_moves_the_right_axes():
  rng = np.random.default_rng(0)
  w = rng.normal(size=(5, 3, 2, 4))                       # torch OIHW
  assert rules.conv(w)[1, 3, 2, 4] == w[4, 2, 1, 3]       # HWIO[h, w, i, o] = OIHW[o, i, h, w]
  np.testing.assert_array_equal(rules.conv_back(rules.conv(w)), w)
  m = rng.normal(size=(1, 5, 3, 2, 2))
  np.testing.assert_array_equal(rules.modconv_back(rules.modconv(m)), m)
  dense = rng.normal(size=(6, 7))
  np.testing.assert_array_equal(rules.linear(rules.linear(dense)), dense)
  x = rng.normal(size=(1, 3, 4, 4))
  np.testing.assert_array_equal(rules.nhwc_to_nchw(rules.nchw_to_nhwc(x)), x)
  fc = rng.normal(size=(2, 3 * 16))                       # [out, C*4*4], NCHW flatten
  ours = rules.flatten_rows_nchw_to_nhwc(fc)
  np.testing.assert_array_equal(rules.flatten_rows_nhwc_to_nchw(ours), fc)
  feature = rng.normal(size=(3, 4, 4))                    # C, H, W
  np.testing.assert_allclose(feature.transpose(1, 2, 0).reshape(-1) @ ours,
                             fc @ feature.reshape(-1))    # the same dense layer either way


def test_a_list_index_captured_into_a_target_becomes_flax_name_index():
  rule = rules.Rule(r"(convs\.\d+)\.conv\.weight", r"params/\1/weight")
  assert rule.target_path(re.fullmatch(rule.pattern, "convs.12.conv.weight")) == \
      "params/convs_12/weight"
  assert rules.exact("a.b[0]", "params/x").pattern == re.escape("a.b[0]")


def test_apply_rules_converts_and_names_every_problem_at_once():
  table = [rules.Rule(r"fc\.(\d+)\.weight", r"params/dense_\1/weight", rules.linear),
           rules.Rule(r"blur\.kernel", None, fir_gain=1.0)]
  expected = {"params/dense_0/weight": (3, 2), "params/dense_1/weight": (3, 2)}
  w = np.arange(6.0).reshape(2, 3)
  good = {"fc.0.weight": w, "fc.1.weight": w + 1, "blur.kernel": layers.fir_kernel(gain=1.0)}
  tree = rules.apply_rules(good, table, expected, "G")
  np.testing.assert_array_equal(tree["params"]["dense_1"]["weight"], (w + 1).T)
  assert rules.flatten_shapes(tree) == expected
  back = rules.export_state_dict(tree, ["fc.0.weight", "fc.1.weight", "blur.kernel"],
                                 [rules.Rule(t.pattern, t.target, t.transform, t.fir_gain,
                                             inverse=rules.linear) for t in table])
  for key, value in good.items():
    np.testing.assert_allclose(back[key], value)
  bad = {"fc.0.weight": np.zeros((2, 4)), "extra.bias": np.zeros(2),
         "blur.kernel": np.ones((4, 4))}
  with pytest.raises(rules.ConversionError) as e:
    rules.apply_rules(bad, table, expected, "G")
  message = str(e.value)
  assert message.startswith("G: ")
  for part in ("unexpected keys: extra.bias",
               "missing: params/dense_0/weight, params/dense_1/weight",
               "shape mismatch: fc.0.weight (2, 4)", "FIR kernels differ from [1,3,3,1]: blur"):
    assert part in message, message
