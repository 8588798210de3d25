"""Interpretability methods for GoogLeNet, one file each, every one for any model (ImageNet or fine-tuned):

* ``branches``: a module's four branch outputs from one pass (``capture_branches``), before their last ReLU
  (``pre_relu``), their shares, knockout, and the gradient of a class at a module (Grad-CAM);
* ``inside``: all of that for one picture at once, with its pictures (``inspect_image``);
* ``fourier``: the image parametrisation visualisation and accentuation share;
* ``featurevis``: an image optimised to excite a channel or a mix of channels (``visualize``, Lucid's method);
* ``examples``: which pictures of a set excite each channel most, and where (``channel_peaks``, ``patch_at``);
* ``explain``: neuron groups (``nmf``) and channel attribution of one answer (``explain``);
* ``accentuate``: a picture changed as little as possible so that a channel responds more;
* ``circuits``: how a channel is built from the module below (expanded weights, their strengths and signs), which
  inputs carried it on a picture, and what fine-tuning rewired (``circuit``, ``picture_attribution``, ``rewiring``).
"""

from .accentuate import accentuate
from .branches import capture_branches
from .circuits import circuit, picture_attribution, rewiring
from .examples import channel_peaks, patch_at, rank
from .explain import channel_attribution, explain, nmf
from .featurevis import directions_of, visualize
from .inside import inspect_image

__all__ = ["accentuate", "capture_branches", "channel_attribution", "channel_peaks", "circuit", "directions_of",
           "explain", "inspect_image", "nmf", "patch_at", "picture_attribution", "rank", "rewiring", "visualize"]
