"""wpgdkit: cost-sensitive adversarial robustness with Wasserstein PGD.

The package is a library of plain functions and small objects with a thin
command line (``wpgdkit``) on top. The public API, imported lazily so that
``import wpgdkit`` stays light (no torch until a name that needs it is used)::

    from wpgdkit import LabelMetric, WassersteinLoss, PGD, WPGD, train, audit, load_checkpoint

=====================  ======================================================
:class:`LabelMetric`   a K×K cost between classes (:mod:`wpgdkit.labelmetric`)
:class:`WassersteinLoss`  ℓ_W of eq. 5 (:mod:`wpgdkit.losses`)
:class:`PGD`, :class:`WPGD`, :class:`ThreatModel`  attacks (:mod:`wpgdkit.attacks`)
:func:`train`          CE, PGD or WPGD training (:mod:`wpgdkit.training`)
:func:`audit`          NE, AE, accuracy gap, ρ, S (:mod:`wpgdkit.audit`)
:func:`load_checkpoint`  the typed run record (:mod:`wpgdkit.checkpoint`)
=====================  ======================================================
"""

from __future__ import annotations


from wpgdkit.lazy import lazy_attributes

__version__ = "0.1.0"

from wpgdkit.errors import WpgdkitError

# name -> module that defines it; loaded on first access (PEP 562).
_LAZY = {
    "LabelMetric": "wpgdkit.labelmetric.core",
    "read_metric": "wpgdkit.labelmetric.io",
    "WassersteinLoss": "wpgdkit.losses",
    "wasserstein_loss": "wpgdkit.losses",
    "ThreatModel": "wpgdkit.attacks.threat",
    "PGD": "wpgdkit.attacks.base",
    "WPGD": "wpgdkit.attacks.base",
    "CostTargeted": "wpgdkit.attacks.base",
    "TrainConfig": "wpgdkit.training.loop",
    "DataConfig": "wpgdkit.training.data",
    "train": "wpgdkit.training.loop",
    "AuditConfig": "wpgdkit.audit.core",
    "audit": "wpgdkit.audit.core",
    "audit_model": "wpgdkit.audit.core",
    "AttackConfig": "wpgdkit.attacks.catalog",
    "ModelSource": "wpgdkit.models.foreign",
    "DataOptions": "wpgdkit.datasets.files",
    "open_dataset": "wpgdkit.datasets.files",
    "dataset_from_arrays": "wpgdkit.datasets.files",
    "Checkpoint": "wpgdkit.checkpoint",
    "load_checkpoint": "wpgdkit.checkpoint",
}

__all__ = ["WpgdkitError", "__version__", *_LAZY]


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _LAZY)
