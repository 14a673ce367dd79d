"""Perturbation budgets written the way papers write them ("8/255", "0.031").

Command-line options such as ``--eps`` and ``--step-size`` take a decimal or a
fraction; :func:`parse_budget` turns either into a positive float without
``eval``.
"""

from __future__ import annotations

import math
from fractions import Fraction

from wpgdkit.errors import WpgdkitError

__all__ = ["parse_budget", "parse_lam"]


def parse_budget(text: str, *, name: str = "--eps") -> float:
    """Parse a positive budget such as ``"8/255"``, ``"0.031"`` or ``"1e-2"``.

    Parameters
    ----------
    text : str
        A decimal (``"0.5"``, ``"1e-2"``) or a fraction of two decimals
        (``"8/255"``, ``" 4 / 255 "``); spaces around the parts are ignored.
    name : str, keyword-only, default="--eps"
        The option's name, for the error message.

    Returns
    -------
    budget : float
        Finite and strictly positive.

    Raises
    ------
    WpgdkitError
        On anything else: garbage, zero, a negative value, a zero
        denominator, NaN or infinity.
    """
    value = _parse_fraction(text) if isinstance(text, str) else None
    if value is None or value <= 0:
        raise WpgdkitError(f"{name} must be a positive number or a fraction like 8/255, got {text!r}")
    try:
        result = float(value)
    except OverflowError:
        result = math.inf
    if not (math.isfinite(result) and result > 0):  # too large, or so small it rounds to 0
        raise WpgdkitError(f"{name} must be a positive number or a fraction like 8/255, got {text!r}")
    return result


def _parse_fraction(text: str) -> Fraction | None:
    """``text`` as an exact fraction, or None if it is not one."""
    parts = text.split("/")
    if len(parts) > 2:
        return None
    try:
        # Fraction parses decimals exactly and rejects "nan" and "inf", which
        # float() would accept.
        numbers = [Fraction(part.strip()) for part in parts]
    except (ValueError, ZeroDivisionError):
        return None
    if len(numbers) == 1:
        return numbers[0]
    if numbers[1] == 0:
        return None
    return numbers[0] / numbers[1]


def parse_lam(text: str, *, name: str = "--lam") -> float:
    """Read the λ of eq. 5 from the command line: a positive number, or ``inf`` (no entropy term).

    Raises
    ------
    WpgdkitError
        If ``text`` is not a positive number or ``inf``; the message names the flag.
    """
    try:
        value = float(text)
    except ValueError:
        raise WpgdkitError(f"{name} must be a positive number or inf, got {text!r}") from None
    if not value > 0 or math.isnan(value):
        raise WpgdkitError(f"{name} must be positive (inf drops the entropy term), got {text!r}")
    return value
