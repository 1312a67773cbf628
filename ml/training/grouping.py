"""Leakage groups and deterministic, group-aware train/val splits."""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

TRAIN_ONLY = "<train-only>"  # group tag: never put in validation

_PRAJNASB_TWIN = re.compile(r"^pj_(\d+)(?:-with-mask)?$")
_PRAJNASB_AUGMENTED = re.compile(r"^pj_augmented_image_\d+$")
# RMFD portraits in chandrikadeb7 are named <a>_<b>_<person>_<n>: one person, many photos.
_RMFD_PERSON = re.compile(r"^cd_\d+_\d+_([a-z]+)_\d+$")


def group_key(source: str, stem: str) -> str:
    """The leakage group of one source image, from its file stem (no extension).

    prajnasb ``pj_N`` and its synthetic twin ``pj_N-with-mask`` share a group; its
    ``augmented_image_*`` files are flips/rotations of unnamed others and are ``TRAIN_ONLY``
    unless duplicate matching links them to their source. chandrikadeb7's RMFD portraits are
    grouped by person. Anything else is its own group.
    """
    if source == "prajnasb":
        if _PRAJNASB_AUGMENTED.match(stem):
            return TRAIN_ONLY
        twin = _PRAJNASB_TWIN.match(stem)
        if twin:
            return f"pj_{twin.group(1)}"
    if source == "chandrikadeb7":
        person = _RMFD_PERSON.match(stem)
        if person:
            return f"cd_person_{person.group(1)}"
    return f"{source}:{stem}"


def stable_order(keys: Iterable[str], seed: int) -> list[str]:
    """``keys`` in a pseudo-random order that depends only on the seed and each key."""
    return sorted(keys, key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest())


def split_groups(
    group_sizes: Mapping[str, int],
    group_strata: Mapping[str, str],
    val_fraction: float,
    seed: int,
) -> set[str]:
    """Pick validation groups: about ``val_fraction`` of the items of every stratum.

    Groups are visited in ``stable_order``; a group joins validation while it fits under its
    stratum's target, so one large group cannot swamp the split. ``TRAIN_ONLY`` never does.

    Returns:
        The keys of the validation groups.
    """
    totals: dict[str, int] = defaultdict(int)
    for key, size in group_sizes.items():
        if key != TRAIN_ONLY:
            totals[group_strata[key]] += size
    taken: dict[str, int] = defaultdict(int)
    val: set[str] = set()
    for key in stable_order((k for k in group_sizes if k != TRAIN_ONLY), seed):
        stratum, size = group_strata[key], group_sizes[key]
        target = val_fraction * totals[stratum]
        if taken[stratum] + size <= target + 0.5:
            val.add(key)
            taken[stratum] += size
    return val


class UnionFind:
    """Disjoint sets over 0..n-1."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, i: int, j: int) -> None:
        self.parent[self.find(i)] = self.find(j)


def duplicate_pairs(signatures: np.ndarray, threshold: float,
                    flipped: np.ndarray | None = None) -> list[tuple[int, int]]:
    """Index pairs (i < j) whose signatures correlate at least ``threshold``.

    Args:
        signatures: (N, D) rows, each zero-mean and unit-norm (see ``face_signature``).
        threshold: cosine similarity above which two faces count as the same picture.
        flipped: (N, D) signatures of the mirrored faces, to catch flipped copies.
    """
    if len(signatures) < 2:
        return []
    similarity = signatures @ signatures.T
    if flipped is not None:
        similarity = np.maximum(similarity, signatures @ flipped.T)
    upper = np.triu(similarity >= threshold, k=1)
    return [(int(i), int(j)) for i, j in zip(*np.nonzero(upper), strict=True)]


def merge_groups(groups: Sequence[str], pairs: Iterable[tuple[int, int]]) -> list[str]:
    """Group labels after joining the groups of every linked pair of items.

    Each ``TRAIN_ONLY`` item starts alone. A merged set takes the smallest ordinary label among
    its members, so a linked augmented copy follows its source into that source's split; a set
    with no ordinary member stays ``TRAIN_ONLY``.
    """
    nodes = [f"{TRAIN_ONLY}#{i}" if g == TRAIN_ONLY else g for i, g in enumerate(groups)]
    index = {name: k for k, name in enumerate(sorted(set(nodes)))}
    sets = UnionFind(len(index))
    for i, j in pairs:
        sets.union(index[nodes[i]], index[nodes[j]])
    label: dict[int, str] = {}
    for name, k in index.items():
        if not name.startswith(TRAIN_ONLY):
            root = sets.find(k)
            label[root] = min(label.get(root, name), name)
    return [label.get(sets.find(index[node]), TRAIN_ONLY) for node in nodes]
