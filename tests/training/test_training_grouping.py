"""Leakage groups and group-aware splits."""

from __future__ import annotations

import numpy as np
import pytest

from ml.training.grouping import (
    TRAIN_ONLY,
    duplicate_pairs,
    group_key,
    merge_groups,
    split_groups,
)


@pytest.mark.parametrize(
    ("source", "stem", "group"),
    [
        ("prajnasb", "pj_12", "pj_12"),
        ("prajnasb", "pj_12-with-mask", "pj_12"),
        ("prajnasb", "pj_augmented_image_7", TRAIN_ONLY),
        ("prajnasb", "pj_prajna", "prajnasb:pj_prajna"),
        ("chandrikadeb7", "cd_0_0_anhu_0004", "cd_person_anhu"),
        ("chandrikadeb7", "cd_1_0_anhu_0157", "cd_person_anhu"),
        ("chandrikadeb7", "cd_0_0_0_copy_10", "chandrikadeb7:cd_0_0_0_copy_10"),
        ("chandrikadeb7", "cd_with_mask123", "chandrikadeb7:cd_with_mask123"),
    ],
)
def test_group_key(source, stem, group):
    assert group_key(source, stem) == group


def test_split_is_deterministic_and_near_fraction():
    sizes = {f"g{k}": 1 + k % 3 for k in range(200)}
    strata = {key: "a" if k < 150 else "b" for k, key in enumerate(sizes)}
    val = split_groups(sizes, strata, 0.2, seed=0)
    assert val == split_groups(sizes, strata, 0.2, seed=0)
    assert val != split_groups(sizes, strata, 0.2, seed=1)
    for stratum in ("a", "b"):
        total = sum(n for g, n in sizes.items() if strata[g] == stratum)
        taken = sum(sizes[g] for g in val if strata[g] == stratum)
        assert 0.15 * total <= taken <= 0.2 * total + 0.5


def test_split_never_takes_train_only_or_oversized_groups():
    sizes = {TRAIN_ONLY: 50, "huge": 80, **{f"g{k}": 1 for k in range(20)}}
    strata = {key: "a" for key in sizes}
    val = split_groups(sizes, strata, 0.2, seed=0)
    assert TRAIN_ONLY not in val and "huge" not in val
    assert len(val) == 20  # 20 % of the 100 non-train-only items, all from small groups


def test_merge_groups_links_copies_to_their_source():
    groups = ["pj_1", "pj_1", "pj_2", TRAIN_ONLY, TRAIN_ONLY, TRAIN_ONLY, "pj_3"]
    # item 3 (augmented) copies item 2; item 4 copies item 3; item 6 duplicates item 0
    merged = merge_groups(groups, [(2, 3), (3, 4), (0, 6)])
    assert merged == ["pj_1", "pj_1", "pj_2", "pj_2", "pj_2", TRAIN_ONLY, "pj_1"]


def test_duplicate_pairs_finds_mirrored_copies():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(3, 16))
    base -= base.mean(axis=1, keepdims=True)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    mirrored = base[:, ::-1].copy()
    signatures = np.concatenate([base, mirrored[:1]])  # item 3 is item 0 mirrored
    flipped = signatures[:, ::-1].copy()
    assert duplicate_pairs(signatures, 0.95) == []
    assert duplicate_pairs(signatures, 0.95, flipped) == [(0, 3)]
