"""WordNet distances between noun synsets, all K×K pairs at once.

Definitions follow NLTK's (the reference the tests compare against): the graph
is the noun hypernym graph, edges ``hypernyms() + instance_hypernyms()``, and
two synsets meet at a common ancestor (a synset counts as its own ancestor).
For a class ``i`` and an ancestor ``a``, ``d_i(a)`` is the shortest upward
path length from ``i`` to ``a``.

Measures, each turned into a distance (0 on the diagonal, larger = farther):

``path``
    ``min_a d_i(a) + d_j(a)``, NLTK's ``shortest_path_distance`` (CIFAR-10
    cat–dog: 4, through carnivore.n.01). Path similarity is ``1/(1+path)``.
``lch``
    Leacock–Chodorow: similarity ``-log((path+1) / 2D)`` with ``D`` = 19 the
    noun taxonomy's depth in WordNet 3.0; as a distance ``lch(i,i) - lch(i,j)
    = log(path+1)``.
``wup``
    ``1 - `` Wu–Palmer similarity ``2 δ / (d_i(s) + d_j(s) + 2 δ)``, with
    ``s`` NLTK's subsumer (the common ancestor of greatest minimum depth, ties
    broken by name) and ``δ`` its maximum depth + 1.
``lca-depth``
    The height of the lowest common ancestor in the hierarchy spanned by the
    classes, as in hierarchy-aware classification (Bertinetto et al., "Making
    Better Mistakes", CVPR 2020): ``h(a) = max_c d_c(a)`` over the classes
    ``c`` below ``a``, and the distance is ``min_a h(a)`` over the common
    ancestors of ``i`` and ``j``.

The work is one breadth-first search per class over the (small) ancestor graph
and, per shared ancestor, one vectorised update of the rows and columns of the
classes below it: 1,000 classes take about a second, against minutes for
500,000 pairwise NLTK calls. The searches are plain Python over an adjacency
dict (no networkx import: a build from the WordNet cache takes well under a
second, and importing networkx was a third of it).
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from wpgdkit.errors import UnknownNameError, WordNetError

if TYPE_CHECKING:  # pragma: no cover
    import networkx as nx

__all__ = [
    "WORDNET_MEASURES",
    "HypernymGraph",
    "hypernym_closure_edges",
    "wordnet_distance_matrix",
    "closure_distance_matrix",
    "lookup_synsets",
    "nltk_pairwise_distance",
]

#: Depth of the WordNet 3.0 noun taxonomy as NLTK's lch_similarity uses it.
NOUN_MAX_DEPTH_30 = 19


def lookup_synsets(names: Sequence[str], wordnet) -> list:
    """Resolve synset names (``cat.n.01``) or WordNet ids (``n02124075``).

    Raises
    ------
    WordNetError
        For a name that is not a noun synset of this WordNet.
    """
    synsets = []
    for name in names:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # NLTK warns as well as failing on a bad offset
                if len(name) == 9 and name[0] == "n" and name[1:].isdigit():
                    synset = wordnet.synset_from_pos_and_offset("n", int(name[1:]))
                else:
                    synset = wordnet.synset(name)
        except Exception as exc:  # NLTK raises WordNetError, ValueError or AttributeError
            raise WordNetError(f"no synset {name!r} in WordNet {wordnet.get_version()}: {exc}") from None
        if synset is None or synset.pos() != "n":
            raise WordNetError(f"{name!r} is not a noun synset in WordNet {wordnet.get_version()}")
        synsets.append(synset)
    return synsets


@dataclass
class HypernymGraph:
    """The part of the noun hypernym graph above a set of classes.

    Attributes
    ----------
    parents : dict of str to list of str
        Each synset's (instance) hypernyms; every node of the graph is a key.
    up : list of dict
        ``up[i][a]`` is ``d_i(a)``, the shortest upward distance from class
        ``i`` to ancestor ``a`` (synset names).
    class_names : list of str
    """

    parents: dict[str, list[str]]
    up: list[dict[str, int]]
    class_names: list[str]

    @property
    def graph(self) -> nx.DiGraph:
        """The same graph as a ``networkx.DiGraph`` (edges from a synset to its hypernyms)."""
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_nodes_from(self.parents)
        graph.add_edges_from((child, parent) for child, parents in self.parents.items() for parent in parents)
        return graph

    @classmethod
    def build(cls, synsets: Sequence) -> HypernymGraph:
        return cls.from_edges([s.name() for s in synsets], *hypernym_closure_edges(synsets))

    @classmethod
    def from_edges(cls, class_names: Sequence[str], nodes: Sequence[str],
                   edges: Sequence[tuple[str, str]]) -> HypernymGraph:
        """The graph of :func:`hypernym_closure_edges`' nodes and edges (what the WordNet cache stores)."""
        parents: dict[str, list[str]] = {node: [] for node in nodes}
        for child, parent in edges:
            above = parents.setdefault(child, [])
            if parent not in above:  # an edge counts once
                above.append(parent)
            parents.setdefault(parent, [])
        up = [_distances_up(parents, name) for name in class_names]
        return cls(parents, up, list(class_names))

    def ancestors_by_class(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Map each ancestor to (class indices below it, their distances to it)."""
        members: dict[str, tuple[list[int], list[int]]] = {}
        for i, dist in enumerate(self.up):
            for a, d in dist.items():
                entry = members.setdefault(a, ([], []))
                entry[0].append(i)
                entry[1].append(d)
        return {a: (np.array(ix), np.array(ds, dtype=np.float64)) for a, (ix, ds) in members.items()}

    def min_depth(self) -> dict[str, int]:
        """Shortest distance from each node up to a root (NLTK's ``min_depth``)."""
        children: dict[str, list[str]] = {node: [] for node in self.parents}
        for child, parents in self.parents.items():
            for parent in parents:
                children[parent].append(child)
        roots = [node for node, parents in self.parents.items() if not parents]
        return _breadth_first(children, roots)

    def max_depth(self) -> dict[str, int]:
        """Longest distance from each node up to a root (NLTK's ``max_depth``)."""
        depth: dict[str, int] = {}
        for start in self.parents:
            # Depth-first, a node's depth once all its hypernyms' are known.
            stack, entered = [start], set()
            while stack:
                node = stack[-1]
                if node in depth:
                    stack.pop()
                    continue
                pending = [p for p in self.parents[node] if p not in depth]
                if not pending:
                    depth[node] = 1 + max(depth[p] for p in self.parents[node]) if self.parents[node] else 0
                    stack.pop()
                    continue
                if node in entered:
                    raise WordNetError(f"the hypernym graph has a cycle through {node}")
                entered.add(node)
                stack.extend(pending)
        return depth


def _breadth_first(adjacency: dict[str, list[str]], sources: Sequence[str]) -> dict[str, int]:
    """Shortest number of edges from any of ``sources`` to each node reached, in the order reached."""
    dist = {source: 0 for source in sources}
    queue = deque(dist)
    while queue:
        node = queue.popleft()
        step = dist[node] + 1
        for nxt in adjacency[node]:
            if nxt not in dist:
                dist[nxt] = step
                queue.append(nxt)
    return dist


def _distances_up(parents: dict[str, list[str]], source: str) -> dict[str, int]:
    """``d(a)`` for each ancestor ``a`` of ``source`` (itself included, at 0)."""
    return _breadth_first(parents, [source])


def hypernym_closure_edges(synsets: Sequence) -> tuple[list[str], list[tuple[str, str]]]:
    """The synsets and all their (instance) hypernyms, and the edges between them.

    Returns
    -------
    nodes : list of str
        Synset names: the classes' first, in order, then each ancestor as it is found.
    edges : list of (str, str)
        ``(synset, hypernym)`` pairs, in the order they are found.
    """
    nodes = list(dict.fromkeys(s.name() for s in synsets))
    seen = set(nodes)
    edges = []
    stack = list(synsets)
    while stack:
        synset = stack.pop()
        for parent in synset.hypernyms() + synset.instance_hypernyms():
            edges.append((synset.name(), parent.name()))
            if parent.name() not in seen:
                seen.add(parent.name())
                nodes.append(parent.name())
                stack.append(parent)
    return nodes, edges


def _min_plus(groups, k: int, weight: Callable[[str, np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """``out[i, j] = min over shared ancestors a of f(a)`` where f defaults to d_i(a) + d_j(a)."""
    out = np.full((k, k), np.inf)
    for a, (ix, ds) in groups.items():
        if len(ix) < 2 and weight is None:
            continue
        block = ds[:, None] + ds[None, :] if weight is None else weight(a, ds)
        sub = np.ix_(ix, ix)
        out[sub] = np.minimum(out[sub], block)
    return out


def _path(graph: HypernymGraph, k: int) -> np.ndarray:
    out = _min_plus(graph.ancestors_by_class(), k)
    np.fill_diagonal(out, 0.0)
    return out


def _lch(graph: HypernymGraph, k: int) -> np.ndarray:
    return np.log1p(_path(graph, k))


def _wup(graph: HypernymGraph, k: int) -> np.ndarray:
    groups = graph.ancestors_by_class()
    min_depth, max_depth = graph.min_depth(), graph.max_depth()
    nodes = sorted(groups)
    node_index = {a: n for n, a in enumerate(nodes)}
    # NLTK's subsumer: greatest min_depth, ties to the smallest name. Visiting
    # ancestors from the least to the most preferred lets the last write win.
    order = sorted(sorted(nodes, reverse=True), key=min_depth.__getitem__)  # stable: names descend within a depth
    subsumer = np.full((k, k), -1)
    best = np.full((k, k), -1)
    for a in order:
        ix = groups[a][0]
        subsumer[np.ix_(ix, ix)] = node_index[a]
        best[np.ix_(ix, ix)] = min_depth[a]
    # ... except that a class that is itself among the lowest common
    # hypernyms is preferred (``self if self in subsumers``).
    for i, (name, dist) in enumerate(zip(graph.class_names, graph.up)):
        below = groups[name][0]
        tied = below[best[i, below] == min_depth[name]]
        subsumer[i, tied] = subsumer[tied, i] = node_index[name]
    length = _path_to_subsumers(graph, groups, nodes, subsumer)
    delta = np.array([max_depth[a] + 1.0 for a in nodes])[subsumer]
    out = 1.0 - 2 * delta / (length + length.T + 2 * delta)
    np.fill_diagonal(out, 0.0)
    return out


def _path_to_subsumers(graph: HypernymGraph, groups, nodes: list[str], subsumer: np.ndarray) -> np.ndarray:
    """``out[i, j]``: NLTK's shortest_path_distance from class i to subsumer[i, j].

    That distance runs through any common ancestor of the class and the
    subsumer, which with multiple inheritance can beat the direct way up.
    """
    k = len(graph.up)
    out = np.zeros(k * k)
    flat = subsumer.ravel()
    # Group the pairs by subsumer with one sort instead of a K×K scan per subsumer.
    order = np.argsort(flat, kind="stable")
    values, starts = np.unique(flat[order], return_index=True)
    for s, pairs in zip(values, np.split(order, starts[1:])):
        above = _distances_up(graph.parents, nodes[s])
        best = np.full(k, np.inf)
        for a, d_sa in above.items():
            ix, ds = groups[a]
            best[ix] = np.minimum(best[ix], ds + d_sa)
        out[pairs] = best[pairs // k]
    return out.reshape(k, k)


def _lca_depth(graph: HypernymGraph, k: int) -> np.ndarray:
    groups = graph.ancestors_by_class()
    heights = {a: float(ds.max()) for a, (ix, ds) in groups.items()}
    out = _min_plus(groups, k, weight=lambda a, ds: np.full((len(ds), len(ds)), heights[a]))
    np.fill_diagonal(out, 0.0)
    return out


#: Measure name -> function of the ancestor graph returning a K×K distance matrix.
WORDNET_MEASURES: dict[str, Callable[[HypernymGraph, int], np.ndarray]] = {
    "path": _path,
    "lch": _lch,
    "wup": _wup,
    "lca-depth": _lca_depth,
}


def wordnet_distance_matrix(synsets: Sequence, *, measure: str = "path") -> np.ndarray:
    """Pairwise WordNet distances between noun synsets.

    Parameters
    ----------
    synsets : sequence of nltk Synset, length K
        Distinct noun synsets (see :func:`lookup_synsets`).
    measure : {"path", "lch", "wup", "lca-depth"}, default="path"
        See the module docstring.

    Returns
    -------
    distances : ndarray of shape (K, K), float64
        Symmetric, zero diagonal, non-negative.

    Raises
    ------
    UnknownNameError
        For an unknown measure.
    WordNetError
        If two classes share a synset or have no common ancestor.
    """
    _checked_names([s.name() for s in synsets], measure)
    return _distances(HypernymGraph.build(synsets), measure)


def closure_distance_matrix(class_names: Sequence[str], nodes: Sequence[str], edges: Sequence[tuple[str, str]],
                            *, measure: str = "path") -> np.ndarray:
    """:func:`wordnet_distance_matrix` from the classes' hypernym closure (:func:`hypernym_closure_edges`).

    The same numbers, bit for bit, without NLTK: the WordNet cache
    (:mod:`wpgdkit.labelmetric.wordnet_cache`) stores the closure.
    """
    names = _checked_names(list(class_names), measure)
    return _distances(HypernymGraph.from_edges(names, nodes, edges), measure)


def _checked_names(names: list[str], measure: str) -> list[str]:
    if measure not in WORDNET_MEASURES:
        raise UnknownNameError(f"unknown WordNet measure {measure!r}; choose one of: {', '.join(WORDNET_MEASURES)}")
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise WordNetError(f"classes share a synset ({', '.join(dup)}): their distance would be 0")
    return names


def _distances(graph: HypernymGraph, measure: str) -> np.ndarray:
    names = graph.class_names
    out = WORDNET_MEASURES[measure](graph, len(names))
    if not np.all(np.isfinite(out)):
        i, j = map(int, np.argwhere(~np.isfinite(out))[0])
        raise WordNetError(f"{names[i]} and {names[j]} have no common hypernym")
    return out


def nltk_pairwise_distance(a, b, measure: str, *, max_depth: int = NOUN_MAX_DEPTH_30) -> float:
    """The same distances through NLTK's per-pair methods (reference and benchmark)."""
    if a == b:
        return 0.0
    if measure == "path":
        return float(a.shortest_path_distance(b))
    if measure == "lch":
        return math.log(2.0 * max_depth) - a.lch_similarity(b)
    if measure == "wup":
        return 1.0 - a.wup_similarity(b)
    raise UnknownNameError(f"NLTK has no pairwise method for {measure!r}")
