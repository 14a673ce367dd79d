"""The reference-check cache: ``metric check`` on a metric it has checked before skips POT.

:func:`~wpgdkit.labelmetric.ot_check.reference_check` costs seconds (importing
POT, a thousand ``ot.emd2`` solves, log-domain Sinkhorn) and its report is a
pure, deterministic function of its inputs, so it is kept, the way a linter
keeps its results, under a key made of everything the numbers depend on. A
report read back equals the one the check computes, bit for bit (NaN
included), and reading it imports neither POT nor SciPy.

An entry is ``<cache>/metric-check/check-<key>.json`` (``<cache>``:
:func:`wpgdkit.cache.cache_dir`). Its key is the SHA-256 of:

* the cache's format and :data:`CACHE_VERSION`;
* the matrix: its shape and the SHA-256 of its float64 C-order bytes (what
  the check computes with), and the class names;
* every option of the check (``p``, ``samples``, ``sinkhorn_samples``,
  ``regs``, ``seed``, both tolerances), each with its type and exact value
  (a float by :meth:`float.hex`: 0.1 and 0.1000001 differ, and so do ``2``
  and ``2.0``, which the report shows differently);
* the code that computes the answer: wpgdkit's ``__version__`` and the
  SHA-256 of ``ot_check.py`` and ``validate.py`` (so an edit in a development
  tree invalidates; remembered by stat signature,
  :func:`wpgdkit.cache.file_digests`, so a lookup costs two ``stat`` calls);
* the installed versions of NumPy, POT and SciPy (read from their metadata,
  without importing them), the Python version, and what decides the last
  bits of floating-point results on this machine: the architecture, the CPU
  features NumPy dispatches its SIMD loops on, and the BLAS NumPy was built
  with (POT's plain Sinkhorn multiplies through it). A cache folder shared
  by different machines (an NFS home) keeps one entry per kind of machine.

An entry is written (atomically) only after a check completed; a check that
raised is not kept. It is read only if its format, version, key, fields and
the SHA-256 of its payload (stored inside) all match and the payload is a
well-formed report (:meth:`~wpgdkit.labelmetric.ot_check.OTCheckReport.from_dict`);
anything else (a truncated or corrupt file, bad JSON, another key, wrong
types, an unreadable file) is ignored without a message and replaced by the
recomputed entry. A folder that cannot be written is skipped silently: the
cache never makes a check fail. Entries are never evicted (a few KB each);
deleting the folder is always safe.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import platform
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from wpgdkit.cache import cache_dir, entry_key, file_digests, read_entry, save_digests, sha256_hex, write_entry
from wpgdkit.labelmetric import ot_check, validate
from wpgdkit.labelmetric.core import LabelMetric
from wpgdkit.labelmetric.ot_check import OTCheckReport, check_reference_options

__all__ = ["CACHE_FORMAT", "CACHE_VERSION", "cached_reference_check", "check_cache_dir"]

CACHE_FORMAT = "wpgdkit-metric-check"
#: Bumped whenever what an entry holds, or what its key is made of, changes.
CACHE_VERSION = 1

#: The options of :func:`~wpgdkit.labelmetric.ot_check.reference_check` a cached check takes, with their defaults.
_DEFAULTS = {name: param.default for name, param in inspect.signature(ot_check.reference_check).parameters.items()
             if param.kind is inspect.Parameter.KEYWORD_ONLY and name != "closed_form"}
#: The source files whose code computes a report (a change to either is a new key).
_SOURCES = (Path(ot_check.__file__), Path(validate.__file__))
#: The distributions whose code computes a report, by their names in the package metadata.
_PACKAGES = ("numpy", "POT", "scipy")


def check_cache_dir() -> Path:
    """``<cache>/metric-check``: the entries and the remembered source hashes."""
    return cache_dir() / "metric-check"


def cached_reference_check(metric: LabelMetric, *, use_cache: bool = True, prepare: Callable[[], None] | None = None,
                           **options) -> tuple[OTCheckReport, bool]:
    """:func:`~wpgdkit.labelmetric.ot_check.reference_check`, from the cache when it was run on the same inputs.

    Parameters
    ----------
    metric : LabelMetric
        A validated metric.
    use_cache : bool, default=True
        False: run the check, and neither read nor write the cache.
    prepare : callable, optional
        Called with no argument just before the check runs (never on a cache
        hit): the command line imports POT there, with its NumPy backend only.
    **options
        ``p``, ``samples``, ``sinkhorn_samples``, ``regs``, ``seed``,
        ``emd_tolerance``, ``sinkhorn_tolerance``, as
        :func:`~wpgdkit.labelmetric.ot_check.reference_check` takes them
        (the same defaults). ``closed_form`` is not one: a check with another
        formula is never cached; call ``reference_check`` for it.

    Returns
    -------
    report : OTCheckReport
        Equal, bit for bit, to the report ``reference_check`` returns.
    cached : bool
        Whether it came from the cache.

    Raises
    ------
    WpgdkitError
        For an option out of range, checked before the cache is looked at
        (:func:`~wpgdkit.labelmetric.ot_check.check_reference_options`), and
        whatever ``reference_check`` raises (never from the cache: only
        completed checks are kept).
    TypeError
        For an option ``reference_check`` does not take, or ``closed_form``.
    """
    unknown = sorted(set(options) - set(_DEFAULTS))
    if unknown:
        raise TypeError(f"cached_reference_check() got unexpected keyword argument(s) {', '.join(unknown)}"
                        + (" (closed_form checks are not cached: call reference_check)" if "closed_form" in unknown
                           else ""))
    options = {**_DEFAULTS, **options}
    options["regs"] = check_reference_options(**options)
    if not use_cache:
        return _compute(metric, options, prepare), False
    fields = _fields(metric, options)
    if fields is None:  # the sources cannot be read: no key to file it under
        return _compute(metric, options, prepare), False
    key = _key(fields)
    found = _read_entry(_entry_path(key), key, fields)
    if found is not None:
        save_digests(_memo())  # source hashes computed for this lookup (a file changed lately)
        return found, True
    report = _compute(metric, options, prepare)
    _store(report, key, fields)
    return report, False


def _compute(metric: LabelMetric, options: dict, prepare: Callable[[], None] | None) -> OTCheckReport:
    if prepare is not None:
        prepare()
    return ot_check.reference_check(metric, **options)


# --- the key ----------------------------------------------------------------------------------------------


def _number(value) -> list[str]:
    """A number with its type and exact value: ``["int", "2"]``, ``["float", "0x1.0000000000000p+1"]``."""
    if isinstance(value, int):
        return ["int", str(value)]
    return ["float", float(value).hex()]


def _installed_version(distribution: str) -> str | None:
    """The installed version of a distribution, from its metadata (no import), or None if it is not installed."""
    try:
        return importlib.metadata.version(distribution)
    except (importlib.metadata.PackageNotFoundError, ValueError, OSError):
        return None


def _numeric_platform() -> dict:
    """What can change the last bits of the same code's floating-point results from one machine to another."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            features = {}
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = {k: str(blas.get(k)) for k in ("name", "version", "openblas configuration")}
    except Exception:  # noqa: BLE001 - an older NumPy, or a build without the record
        blas = None
    return {"python": f"{sys.implementation.name} {platform.python_version()}", "machine": platform.machine(),
            "cpu": sorted(name for name, on in features.items() if on), "blas": blas}


def _memo() -> Path:
    return check_cache_dir() / "file-digests.json"


def _fields(metric: LabelMetric, options: dict) -> dict | None:
    """What an entry's key is made of, or None if the code's source files cannot be read."""
    from wpgdkit import __version__

    try:
        digests = file_digests(_SOURCES, memo=_memo(), save=False)
    except OSError:
        return None
    matrix = np.ascontiguousarray(metric.matrix, dtype=np.float64)
    return {
        "matrix": {"shape": list(matrix.shape), "sha256": sha256_hex(matrix.tobytes())},
        "classes": list(metric.classes),
        "options": {name: ([_number(r) for r in value] if name == "regs" else _number(value))
                    for name, value in options.items()},
        "code": {"wpgdkit": __version__, **{path.name: digest for path, digest in zip(_SOURCES, digests)}},
        "packages": {name: _installed_version(name) for name in _PACKAGES},
        "platform": _numeric_platform(),
    }


def _key(fields: dict) -> str:
    return entry_key(CACHE_FORMAT, CACHE_VERSION, fields)


def _entry_path(key: str) -> Path:
    return check_cache_dir() / f"check-{key}.json"


# --- entries ----------------------------------------------------------------------------------------------


def _read_entry(path: Path, key: str, fields: dict) -> OTCheckReport | None:
    payload = read_entry(path, kind=CACHE_FORMAT, version=CACHE_VERSION, key=key, fields=fields)
    if payload is None:
        return None
    try:
        return OTCheckReport.from_dict(payload)
    except (ValueError, TypeError):
        return None


def _store(report: OTCheckReport, key: str, fields: dict) -> None:
    if write_entry(_entry_path(key), kind=CACHE_FORMAT, version=CACHE_VERSION, key=key, fields=fields,
                   payload=report.to_dict()):
        save_digests(_memo())
