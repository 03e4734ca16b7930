"""Training objectives as pure functions, one module per family, each paper equation in the
docstring of the function that computes it: :mod:`.ssn` (R_D), :mod:`.spatialgan` (GradCAM
alignment, and our heatmap-locality penalty), :mod:`.regressor` (latent regression);
:mod:`.distortion` is SSN's image distortion, the measure R_D, the locality penalty and the
Table-2 metric share."""


def setting(loss_cfg, key: str, defaults: dict):
  """``loss_cfg[key]``, or ``defaults[key]`` (the loss module's ``*_DEFAULTS``) for a
  ``config.loss`` saved before ``key`` existed."""
  return loss_cfg.get(key, defaults[key])
