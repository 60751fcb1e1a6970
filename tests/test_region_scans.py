"""The region step's incremental answers equal the scans over every site they replace.

The region's board (:class:`~operators.attribute_board.AttributeBoard`) and the peer group
(:class:`~detectors.PeerGroup`) answer from state kept up to date as sites report, so that a
response costs the same in a region of 5 sites or of 2,000; here each answer is checked, to the
float, against the plain computation over all sites, on random marks with many ties, zeros and
sites leaving and coming back.
"""

from __future__ import annotations

import random
from statistics import median

import pytest

from boucle.operators.attribute_board import AttributeBoard


def _scan_moving(z: dict[str, float], site: str, min_others: int, down_z: float) -> bool:
    others = [v for s, v in z.items() if s != site]
    return len(others) >= min_others and median(others) <= -down_z / 2


@pytest.mark.parametrize("seed", range(6))
def test_the_board_answers_as_a_scan_of_every_site(seed: int) -> None:
    rng = random.Random(seed)
    down_z = rng.choice([1.0, 2.0, 2.5])
    board = AttributeBoard(down_z)
    z: dict[str, float] = {}
    local: dict[str, bool] = {}
    sites = [f"s{i}" for i in range(rng.randint(2, 40))]
    # Values on a coarse grid: many ties, and many exactly at the thresholds.
    grid = [0.0, 0.0, 0.0, -down_z, -down_z / 2, -down_z / 2 - 0.25, -down_z / 2 + 0.25, -3.0, 1.0, -0.5]
    for _ in range(3000):
        site = rng.choice(sites)
        value, on = rng.choice(grid), rng.random() < 0.1
        board.mark(site, value, on)
        z[site], local[site] = value, on
        asked = rng.choice(sites)
        assert board.down_sites() == sorted(s for s, v in z.items() if v <= -down_z or local.get(s))
        assert board.n_down == len(board.down_sites()) and len(board) == len(z)
        assert board.others_local(asked) == any(on for s, on in local.items() if s != asked)
        assert board.others_down(asked) == sum(1 for s, v in z.items() if s != asked and v <= -down_z)
        for min_others in (1, 2, 5):
            assert board.moving(asked, min_others) == _scan_moving(z, asked, min_others, down_z)
    rebuilt = AttributeBoard(down_z, dict(board.z), dict(board.local))
    asked = sites[0]
    assert (rebuilt.down_sites(), rebuilt.others_down(asked), rebuilt.moving(asked, 2)) == (
        board.down_sites(), board.others_down(asked), board.moving(asked, 2))


_MAD_TO_SD = 1.4826


def _scan_compare(group, member: str, mean: float, n: float, sd: float) -> dict[str, float] | None:
    """PeerGroup.compare as it was written before the sorted means: a scan and two sorts."""
    import math
    others = [m for key, (m, k, _) in group.members.items() if key != member and k >= group.min_n]
    if len(others) < group.min_peers:
        return None
    med = median(others)
    spread = max(_MAD_TO_SD * median(abs(m - med) for m in others), group.spread_floor)
    se = sd / math.sqrt(n) if n > 0 else math.inf
    scale = math.sqrt(spread * spread + se * se)
    gap = mean - med
    shrink = spread * spread / (scale * scale)
    return {"peer_median": med, "peer_spread": spread, "n_peers": float(len(others)), "gap": gap,
            "z": gap / scale, "shrunk_gap": gap * shrink}


@pytest.mark.parametrize("seed", range(6))
def test_peer_comparisons_equal_a_scan_of_every_member(seed: int) -> None:
    from boucle.detectors.peer import PeerGroup

    rng = random.Random(seed)
    group = PeerGroup(min_peers=rng.choice([1, 3, 5]), min_n=5.0)
    members = [f"s{i}" for i in range(rng.randint(1, 60))]
    levels = [round(rng.uniform(1, 5), 1) for _ in range(8)]  # few distinct means: ties
    compared = 0
    for step in range(3000):
        member = rng.choice(members)
        if step % 97 == 0:
            group.remove(member)
        else:
            mean = rng.choice(levels) if rng.random() < 0.7 else rng.uniform(1, 5)
            group.update(member, mean, rng.choice([0.0, 4.9, 5.0, 30.0]), rng.uniform(0.5, 1.5))
        asked = rng.choice(members + ["outsider"])
        args = (rng.uniform(1, 5), rng.choice([0.0, 6.0, 50.0]), 0.9)
        expected = _scan_compare(group, asked, *args)
        assert group.compare(asked, *args) == expected
        compared += expected is not None
    assert compared > 100  # the comparisons were made, not only refused
    resumed = PeerGroup.from_state(group.state(), min_peers=group.min_peers, min_n=group.min_n)
    assert resumed.compare(members[0], 3.0, 50.0, 0.9) == _scan_compare(group, members[0], 3.0, 50.0, 0.9)
