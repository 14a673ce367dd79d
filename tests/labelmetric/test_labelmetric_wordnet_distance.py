"""WordNet distance matrices against NLTK's per-pair methods (wpgdkit.labelmetric.wordnet_distance)."""

from __future__ import annotations

import itertools
import math
import random
import warnings
from collections import deque
from pathlib import Path

import numpy as np
import pytest

from wpgdkit.errors import UnknownNameError, WordNetError
from wpgdkit.labelmetric.wordnet_distance import (
    NOUN_MAX_DEPTH_30,
    WORDNET_MEASURES,
    lookup_synsets,
    nltk_pairwise_distance,
    wordnet_distance_matrix,
)
from wpgdkit.wordnet import load_wordnet

CIFAR10_SYNSETS = (
    "airplane.n.01", "car.n.01", "bird.n.01", "cat.n.01", "deer.n.01",
    "dog.n.01", "frog.n.01", "horse.n.01", "ship.n.01", "truck.n.01",
)
CAT, DOG, CAR, TRUCK = 3, 5, 1, 9

# Hand-picked edge cases: instance synsets (instance_hypernyms), the root,
# multiple inheritance (dog.n.01 is also a domestic_animal.n.01), an ancestor
# together with its descendants, and far-apart branches.
HANDPICKED = (
    "entity.n.01", "physical_entity.n.01", "einstein.n.01", "newton.n.02", "paris.n.01", "france.n.01",
    "person.n.01", "physicist.n.01", "dog.n.01", "cat.n.01", "domestic_animal.n.01", "animal.n.01",
    "water.n.01", "idea.n.01", "car.n.01", "truck.n.01", "motor_vehicle.n.01", "oak.n.02",
)


@pytest.fixture(scope="module")
def wn():
    return load_wordnet()


def _noun_data_lines(wn):
    with open(Path(wn.root.path) / "data.noun", "rb") as fh:
        return [line for line in fh if not line.startswith(b" ")]  # skip the licence header


@pytest.fixture(scope="module")
def noun_lines(wn):
    return _noun_data_lines(wn)


@pytest.fixture(scope="module")
def sample(wn, noun_lines):
    """``random.Random(0).sample(list(wn.all_synsets('n')), 150)``, without the 10-s list.

    ``all_synsets('n')`` yields data.noun's synsets in file order and
    ``random.sample`` draws positions from the length alone, so drawing
    positions from the file's offsets selects exactly the same synsets.
    """
    offsets = [int(line[:8]) for line in noun_lines]
    positions = random.Random(0).sample(range(len(offsets)), 150)
    synsets = [wn.synset_from_pos_and_offset("n", offsets[p]) for p in positions]
    assert [s.name() for s in synsets[:3]] == ["range.n.04", "importer.n.01", "sanctification.n.01"]
    return synsets


@pytest.fixture(scope="module")
def noun_depths(noun_lines) -> dict[int, int]:
    """Longest hypernym (and instance hypernym) chain above each noun, parsed from data.noun without NLTK."""
    parents: dict[int, list[int]] = {}
    for line in noun_lines:
        fields = line.split(b" | ")[0].split()
        offset, w_cnt = int(fields[0]), int(fields[3], 16)
        pos = 4 + 2 * w_cnt
        p_cnt = int(fields[pos])
        ptrs = fields[pos + 1 : pos + 1 + 4 * p_cnt]
        parents[offset] = [int(ptrs[n + 1]) for n in range(0, len(ptrs), 4) if ptrs[n] in (b"@", b"@i")]
    depth: dict[int, int] = {}
    for node in parents:
        stack = [node]
        while stack:
            top = stack[-1]
            todo = [p for p in parents[top] if p not in depth]
            if todo:
                stack.extend(todo)
                continue
            depth[top] = 1 + max((depth[p] for p in parents[top]), default=-1)
            stack.pop()
    return depth


@pytest.fixture(scope="module")
def noun_max_depth(noun_depths) -> int:
    return max(noun_depths.values())


@pytest.fixture(scope="module")
def nltk_lch_ready(wn, noun_max_depth):
    """Let NLTK's lch_similarity skip its 20-s scan of every noun for the taxonomy depth.

    It caches that depth in ``_max_depth[(pos, simulate_root)]``; the value set
    here is the one the scan finds, recomputed independently from data.noun.
    """
    wn._max_depth.setdefault(("n", False), noun_max_depth)
    assert wn._max_depth[("n", False)] == noun_max_depth
    return wn


def up_distances(synset) -> dict:
    """d(a) for every ancestor a (itself included): BFS over hypernyms + instance hypernyms."""
    dist = {synset: 0}
    queue = deque([synset])
    while queue:
        s = queue.popleft()
        for parent in s.hypernyms() + s.instance_hypernyms():
            if parent not in dist:
                dist[parent] = dist[s] + 1
                queue.append(parent)
    return dist


def brute_lca_depth(synsets) -> np.ndarray:
    ups = [up_distances(s) for s in synsets]
    height: dict = {}
    for dist in ups:
        for a, d in dist.items():
            height[a] = max(height.get(a, 0), d)
    k = len(synsets)
    out = np.zeros((k, k))
    for i, j in itertools.combinations(range(k), 2):
        common = set(synsets[i].common_hypernyms(synsets[j]))
        assert common == set(ups[i]) & set(ups[j])  # NLTK and the BFS agree on the ancestors
        out[i, j] = out[j, i] = min(height[a] for a in common)
    return out


# --- hand-checked values --------------------------------------------------------------------------


def test_cifar10_cat_dog_path_is_4(wn):
    cat, dog = lookup_synsets(["cat.n.01", "dog.n.01"], wn)
    # The path by hand: cat.n.01 -> feline.n.01 -> carnivore.n.01 <- canine.n.02 <- dog.n.01.
    assert [s.name() for s in cat.hypernyms()] == ["feline.n.01"]
    assert [s.name() for s in wn.synset("feline.n.01").hypernyms()] == ["carnivore.n.01"]
    assert "canine.n.02" in [s.name() for s in dog.hypernyms()]
    assert [s.name() for s in wn.synset("canine.n.02").hypernyms()] == ["carnivore.n.01"]
    np.testing.assert_array_equal(wordnet_distance_matrix([cat, dog]), [[0.0, 4.0], [4.0, 0.0]])
    full = wordnet_distance_matrix(lookup_synsets(CIFAR10_SYNSETS, wn), measure="path")
    assert full[CAT, DOG] == full[DOG, CAT] == 4.0
    assert full[CAR, TRUCK] == 2.0  # car.n.01 -> motor_vehicle.n.01 <- truck.n.01


def test_cifar10_lca_depth_hand_checked(wn):
    m = wordnet_distance_matrix(lookup_synsets(CIFAR10_SYNSETS, wn), measure="lca-depth")
    # carnivore.n.01 is 2 above cat and dog, and no other CIFAR-10 class is below it.
    assert m[CAT, DOG] == m[DOG, CAT] == 2.0
    # motor_vehicle.n.01 is 1 above car and truck, the only classes below it.
    assert m[CAR, TRUCK] == 1.0


def test_lch_and_wup_hand_checked(wn):
    cat, dog = lookup_synsets(["cat.n.01", "dog.n.01"], wn)
    lch = wordnet_distance_matrix([cat, dog], measure="lch")
    assert lch[0, 1] == pytest.approx(math.log(5.0), abs=1e-15)  # log(path + 1)
    wup = wordnet_distance_matrix([cat, dog], measure="wup")
    # Subsumer carnivore.n.01, max depth 11 in WordNet 3.0 (delta 12); both are 2 below it:
    # similarity 2*12 / (2 + 2 + 2*12).
    assert wn.synset("carnivore.n.01").max_depth() == 11
    assert wup[0, 1] == pytest.approx(1 - 24 / 28, abs=1e-15)


# --- against NLTK on a random sample ---------------------------------------------------------------


def test_noun_max_depth_constant(noun_depths, noun_max_depth, sample):
    # The parser agrees with NLTK's max_depth where we ask NLTK...
    for synset in sample:
        assert noun_depths[synset.offset()] == synset.max_depth(), synset
    # ... and the deepest noun is 19 below entity.n.01, the library's constant.
    assert NOUN_MAX_DEPTH_30 == noun_max_depth == 19


def test_path_matches_nltk_on_every_pair_of_the_sample(sample):
    m = wordnet_distance_matrix(sample, measure="path")
    for i, j in itertools.combinations(range(len(sample)), 2):
        expected = nltk_pairwise_distance(sample[i], sample[j], "path")
        assert m[i, j] == m[j, i] == expected, (sample[i], sample[j])
    # nltk_pairwise_distance is NLTK's own method.
    assert nltk_pairwise_distance(sample[0], sample[1], "path") == sample[0].shortest_path_distance(sample[1])


def _pair_sample(n: int, count: int, seed: int) -> list[tuple[int, int]]:
    """A seeded sample of ordered pairs (both directions are checked against NLTK)."""
    return random.Random(seed).sample(list(itertools.permutations(range(n), 2)), count)


def test_lch_matches_nltk_on_a_seeded_sample_of_pairs(sample, nltk_lch_ready):
    m = wordnet_distance_matrix(sample, measure="lch")
    a, b = sample[0], sample[1]
    # nltk_pairwise_distance is lch = log(2D) - NLTK's lch_similarity, D = 19.
    assert nltk_pairwise_distance(a, b, "lch") == math.log(2.0 * 19) - a.lch_similarity(b)
    bad = []
    for i, j in _pair_sample(len(sample), 2000, seed=2):
        expected = nltk_pairwise_distance(sample[i], sample[j], "lch")
        if not abs(m[i, j] - expected) <= 1e-12:
            bad.append((sample[i].name(), sample[j].name(), m[i, j], expected))
    assert not bad, bad[:5]


def test_wup_matches_nltk_on_a_seeded_sample_of_pairs(sample):
    m = wordnet_distance_matrix(sample, measure="wup")
    a, b = sample[0], sample[1]
    assert nltk_pairwise_distance(a, b, "wup") == 1.0 - a.wup_similarity(b)
    bad = []
    for i, j in _pair_sample(len(sample), 2000, seed=1):
        expected = nltk_pairwise_distance(sample[i], sample[j], "wup")
        if not abs(m[i, j] - expected) <= 1e-12:
            bad.append((sample[i].name(), sample[j].name(), m[i, j], expected))
    assert not bad, bad[:5]


def nltk_wup_symmetric(a, b) -> float:
    """NLTK's Wu-Palmer distance, in the order that makes it symmetric.

    NLTK picks ``self if self in subsumers else subsumers[0]``, so when one
    synset ties with another lowest common hypernym its result depends on the
    argument order. The library's matrix is symmetric and prefers the class
    that is itself a lowest common hypernym, i.e. NLTK with that class first.
    """
    subsumers = a.lowest_common_hypernyms(b, use_min_depth=True)
    first, second = (b, a) if b in subsumers and a not in subsumers else (a, b)
    return 1.0 - first.wup_similarity(second)


def test_nltk_wup_is_asymmetric_for_an_instance_and_its_class(wn):
    einstein, physicist = lookup_synsets(["einstein.n.01", "physicist.n.01"], wn)
    # organism.n.01 and physicist.n.01 tie as lowest common hypernyms (min depth 5).
    assert [s.name() for s in einstein.lowest_common_hypernyms(physicist, use_min_depth=True)] == [
        "organism.n.01", "physicist.n.01",
    ]
    forward = 1.0 - einstein.wup_similarity(physicist)
    backward = 1.0 - physicist.wup_similarity(einstein)
    assert forward != backward
    m = wordnet_distance_matrix([einstein, physicist], measure="wup")
    assert m[0, 1] == m[1, 0] == pytest.approx(backward, abs=1e-15)
    assert backward == pytest.approx(1 - 18 / 19, abs=1e-15)  # physicist max depth 8: 2*9 / (1 + 0 + 2*9)


@pytest.mark.parametrize("measure", ["path", "lch", "wup"])
def test_handpicked_edge_cases_match_nltk_on_every_pair(wn, nltk_lch_ready, measure):
    synsets = lookup_synsets(HANDPICKED, wn)
    m = wordnet_distance_matrix(synsets, measure=measure)
    for i, j in itertools.permutations(range(len(synsets)), 2):
        a, b = synsets[i], synsets[j]
        expected = nltk_wup_symmetric(a, b) if measure == "wup" else nltk_pairwise_distance(a, b, measure)
        assert m[i, j] == pytest.approx(expected, abs=1e-12, rel=0), (a, b)


def test_lca_depth_matches_brute_force_on_the_sample(sample):
    m = wordnet_distance_matrix(sample, measure="lca-depth")
    np.testing.assert_array_equal(m, brute_lca_depth(sample))


def test_lca_depth_matches_brute_force_on_handpicked(wn):
    synsets = lookup_synsets(HANDPICKED, wn)
    m = wordnet_distance_matrix(synsets, measure="lca-depth")
    np.testing.assert_array_equal(m, brute_lca_depth(synsets))


def test_lca_depth_depends_on_the_class_set(wn):
    # Adding a class far below carnivore.n.01 raises its height, and with it cat-dog.
    cat, dog, poodle = lookup_synsets(["cat.n.01", "dog.n.01", "toy_poodle.n.01"], wn)
    alone = wordnet_distance_matrix([cat, dog], measure="lca-depth")[0, 1]
    with_poodle = wordnet_distance_matrix([cat, dog, poodle], measure="lca-depth")[0, 1]
    expected = brute_lca_depth([cat, dog, poodle])[0, 1]
    assert alone == 2.0 and with_poodle == expected > 2.0


@pytest.mark.parametrize("measure", list(WORDNET_MEASURES))
def test_symmetric_zero_diagonal_non_negative(sample, measure):
    m = wordnet_distance_matrix(sample[:60], measure=measure)
    assert m.shape == (60, 60) and m.dtype == np.float64
    np.testing.assert_array_equal(m, m.T)
    np.testing.assert_array_equal(np.diag(m), 0.0)
    off = m[~np.eye(60, dtype=bool)]
    assert np.all(np.isfinite(m)) and off.min() > 0


def test_order_of_classes_permutes_the_matrix(sample):
    sub = sample[:20]
    perm = np.random.default_rng(0).permutation(20)
    for measure in WORDNET_MEASURES:
        a = wordnet_distance_matrix(sub, measure=measure)
        b = wordnet_distance_matrix([sub[p] for p in perm], measure=measure)
        np.testing.assert_array_equal(b, a[np.ix_(perm, perm)])


# --- errors and lookups ---------------------------------------------------------------------------------


def test_duplicate_synsets(wn):
    cat, dog = lookup_synsets(["cat.n.01", "dog.n.01"], wn)
    with pytest.raises(WordNetError, match=r"share a synset \(cat.n.01\)"):
        wordnet_distance_matrix([cat, dog, cat])
    # The same synset reached by two names (wnid and name) is still a duplicate.
    with pytest.raises(WordNetError, match="share a synset"):
        wordnet_distance_matrix(lookup_synsets(["n02124075", "egyptian_cat.n.01"], wn))


def test_unknown_measure_lists_the_measures(wn):
    cat, dog = lookup_synsets(["cat.n.01", "dog.n.01"], wn)
    with pytest.raises(UnknownNameError, match=r"'jcn'.*path, lch, wup, lca-depth"):
        wordnet_distance_matrix([cat, dog], measure="jcn")


def test_lookup_by_name_and_wnid(wn):
    got = lookup_synsets(["n02124075", "cat.n.01", "n02084071"], wn)
    assert [s.name() for s in got] == ["egyptian_cat.n.01", "cat.n.01", "dog.n.01"]
    assert got[0].offset() == 2124075 and got[0].pos() == "n"


@pytest.mark.parametrize(
    ("name", "pattern"),
    [
        ("nosuchword.n.01", r"no synset 'nosuchword.n.01' in WordNet 3.0"),
        ("cat.n.99", r"no synset 'cat.n.99'"),
        ("n99999999", r"'n99999999'"),
        ("n0212407", r"no synset 'n0212407'"),
        ("run.v.01", r"'run.v.01' is not a noun synset in WordNet 3.0"),
        ("good.a.01", r"not a noun synset"),
        ("cat", r"no synset 'cat'"),
    ],
)
def test_lookup_errors(wn, name, pattern):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # NLTK warns about an unknown offset, then returns None
        with pytest.raises(WordNetError, match=pattern):
            lookup_synsets(["dog.n.01", name], wn)


def test_nltk_pairwise_reference(wn):
    cat, dog = lookup_synsets(["cat.n.01", "dog.n.01"], wn)
    assert nltk_pairwise_distance(cat, cat, "path") == 0.0
    assert nltk_pairwise_distance(cat, dog, "path") == 4.0
    with pytest.raises(UnknownNameError, match="lca-depth"):
        nltk_pairwise_distance(cat, dog, "lca-depth")
