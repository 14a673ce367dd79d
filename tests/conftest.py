"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def wordnet():
    """WordNet 3.0 through NLTK (from /usr/share/wordnet or NLTK's data path)."""
    from wpgdkit.wordnet import load_wordnet

    return load_wordnet()
