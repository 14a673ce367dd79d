"""wpgdkit: cost-sensitive adversarial robustness with Wasserstein PGD.

The package is a library of plain functions on tensors and arrays with a thin
command line (``wpgdkit``) on top. Start with :mod:`wpgdkit.labelmetric`
(label metrics: build, check, compare) and :mod:`wpgdkit.datasets` (the data
set registry).
"""

from __future__ import annotations

__version__ = "0.1.0"

from wpgdkit.errors import WpgdkitError

__all__ = ["WpgdkitError", "__version__"]
