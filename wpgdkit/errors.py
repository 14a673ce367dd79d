"""The one error family wpgdkit raises.

Library functions raise a subclass of :class:`WpgdkitError` for every problem
caused by their input (a missing file, a malformed matrix, an unknown name, a
value out of range). The command line turns any of them into one line on
stderr and exit code 2; anything else escaping is a bug.
"""

from __future__ import annotations


class WpgdkitError(Exception):
    """Base class of every error caused by bad input or missing data."""


class UnknownNameError(WpgdkitError, KeyError):
    """A registry lookup (dataset, metric source, measure, ...) failed."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataNotFoundError(WpgdkitError, FileNotFoundError):
    """A data set, a file or the WordNet database is not where we looked."""


class MetricFormatError(WpgdkitError, ValueError):
    """A label-metric file or matrix is malformed or fails validation."""


class WordNetError(WpgdkitError):
    """WordNet data is missing, or a synset cannot be found in it."""


class OutputError(WpgdkitError, OSError):
    """An output file cannot be written there (a folder in the way, no permission, ...)."""
