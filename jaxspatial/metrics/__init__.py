"""Evaluation metrics: ported perceptual networks and the metric maths built on them.

Public feature functions (images NHWC float in [-1, 1], any size, numpy or jax arrays; weights
converted once into ``$JAXSPATIAL_HOME`` with ``python -m jaxspatial.convert_torch --net ...``):

* :func:`inception_features` (n, 2048): pytorch-fid pool3, for FID/KID;
* :func:`vgg16_features` (n, 4096): torchvision VGG16 fc2 pre-ReLU, for PRDC;
* :func:`lpips` (n,) or (n, H, W): LPIPS v0.1, VGG or AlexNet;
* :func:`lpips_module` / :func:`lpips_distance`: LPIPS inside jitted, differentiated code.

Networks live in :mod:`jaxspatial.nets` (inception, vgg, lpips_net; weights, features);
metric maths in :mod:`.fid` (FID, KID, streaming stats), :mod:`.ppl`, :mod:`.prdc`,
:mod:`.masked_l1`, :mod:`.critic`; family metrics in :mod:`.distortion` (SSN, also
``js.ssn.distortion``) and :mod:`.comove` (SpatialGAN); :mod:`.registry` is what
``python -m jaxspatial.evaluate`` runs.
"""

from jaxspatial.metrics import fid, masked_l1, ppl, prdc
from jaxspatial.nets.features import (data_mesh, inception_features, lpips, lpips_module,
                                         vgg16_features)
from jaxspatial.metrics.fid import (FeatureStats, compute_feature_stats, fid_from_stats,
                                    frechet_distance, kid)
from jaxspatial.metrics.ppl import perceptual_path_length
from jaxspatial.nets.lpips_net import LPIPS, lpips_distance
from jaxspatial.nets.weights import convert_net, load_params

__all__ = [
    "FeatureStats", "LPIPS", "compute_feature_stats", "convert_net", "data_mesh",
    "fid", "fid_from_stats", "frechet_distance", "inception_features", "kid", "load_params",
    "lpips", "lpips_distance", "lpips_module", "masked_l1", "perceptual_path_length", "ppl",
    "prdc", "vgg16_features",
]
