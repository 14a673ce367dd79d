"""The public API: ``from wpgdkit import ...`` gives the documented objects, lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

PUBLIC = ["LabelMetric", "WassersteinLoss", "PGD", "WPGD", "ThreatModel", "train", "audit", "load_checkpoint",
          "Checkpoint", "TrainConfig", "DataConfig", "AuditConfig", "WpgdkitError", "__version__"]


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()


def test_import_wpgdkit_does_not_import_torch():
    assert _run("import sys, wpgdkit; print('torch' in sys.modules)") == "False"
    assert _run("import sys, wpgdkit.attacks, wpgdkit.checkpoint; print('torch' in sys.modules)") == "False"


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_name_resolves(name):
    import wpgdkit

    assert getattr(wpgdkit, name) is not None and name in wpgdkit.__all__


def test_audit_is_the_function_whichever_import_came_first():
    # The subpackage wpgdkit.audit shares the function's name; both spellings must work.
    code = ("import wpgdkit.audit.scores\nfrom wpgdkit import audit, AuditConfig\nfrom wpgdkit.audit.core import audit as fn\n"
            "print(callable(audit), audit.confusion_matrix is not None, fn.__name__)")
    assert _run(code) == "True True audit"
    from wpgdkit import audit
    from wpgdkit.audit.core import audit as function

    assert audit.__call__ is not None and callable(audit)
    assert function.__module__ == "wpgdkit.audit.core"


def test_objects_are_the_library_ones():
    import wpgdkit
    from wpgdkit.attacks.base import WPGD
    from wpgdkit.checkpoint import load_checkpoint
    from wpgdkit.losses import WassersteinLoss

    assert wpgdkit.WPGD is WPGD and wpgdkit.load_checkpoint is load_checkpoint
    assert wpgdkit.WassersteinLoss is WassersteinLoss
    with pytest.raises(AttributeError):
        wpgdkit.no_such_name  # noqa: B018
