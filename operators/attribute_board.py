"""One attribute's board in a region: each site's latest expectation z and local trigger, with the
counts the region's decisions read kept up to date as sites report.

The region step asks three questions on every site summary (:mod:`operators.attribute_regions`):
which sites are down (``z <= -down_z`` or a local trigger), is the region stirring (another site
with a local trigger, or enough others down), is it moving (the median z of the others at or
below ``-down_z / 2``). Asked by scanning the region's sites, each costs as many steps as the
region has sites, on every response: on a network of thousands of thin sites that scan was most
of the attribute step's time. The board answers each from counts changed as one site's marks
change, so the cost per response does not grow with the region; the median is only computed
when the counts cannot settle it (an even number of others split exactly at the threshold).

>>> board = AttributeBoard(down_z=2.0)
>>> for site, z in (("a", -3.0), ("b", -1.5), ("c", 0.0)):
...     board.mark(site, z, False)
>>> board.down_sites(), board.others_down("a"), board.others_local("a")
(['a'], 0, False)
>>> board.moving("c", min_others=2)    # the others' z: -3.0, -1.5: median -2.25 <= -1.0
True
>>> board.mark("b", 0.5, True)
>>> board.down_sites(), board.others_local("a")
(['a', 'b'], True)
"""

from __future__ import annotations

from statistics import median

__all__ = ["AttributeBoard"]


class AttributeBoard:
    """The latest ``z`` and local trigger of each site of a region on one attribute, and the counts
    of sites down, at half the threshold, and with a local trigger."""

    __slots__ = ("down_z", "z", "local", "_down", "_low", "_half", "_on")

    def __init__(self, down_z: float, z: dict[str, float] | None = None,
                 local: dict[str, bool] | None = None) -> None:
        self.down_z = down_z
        self.z: dict[str, float] = {}
        self.local: dict[str, bool] = {}
        self._down: set[str] = set()  # z <= -down_z or a local trigger
        self._low = 0  # sites with z <= -down_z
        self._half = 0  # sites with z <= -down_z / 2
        self._on = 0  # sites with a local trigger
        for site, value in (z or {}).items():  # (the region writes both marks of a site together)
            self.mark(site, value, bool((local or {}).get(site)))

    def mark(self, site: str, z: float, local: bool) -> None:
        """Site ``site``'s latest z and whether it has a local trigger."""
        old_z, old_local = self.z.get(site), self.local.get(site, False)
        threshold = -self.down_z
        if old_z is not None:
            self._low -= old_z <= threshold
            self._half -= old_z <= threshold / 2
        self._on += local - old_local
        self.z[site], self.local[site] = z, local
        self._low += z <= threshold
        self._half += z <= threshold / 2
        if z <= threshold or local:
            self._down.add(site)
        else:
            self._down.discard(site)

    def __len__(self) -> int:
        return len(self.z)

    @property
    def n_down(self) -> int:
        return len(self._down)

    def down_sites(self) -> list[str]:
        """The sites down (``z <= -down_z`` or a local trigger), sorted."""
        return sorted(self._down)

    def others_local(self, site: str) -> bool:
        """Whether a site other than ``site`` has a local trigger."""
        return self._on - self.local.get(site, False) > 0

    def others_down(self, site: str) -> int:
        """How many sites other than ``site`` have ``z <= -down_z``."""
        own = self.z.get(site)
        return self._low - (own is not None and own <= -self.down_z)

    def moving(self, site: str, min_others: int) -> bool:
        """At least ``min_others`` other sites, and their median z at or below ``-down_z / 2``."""
        own = self.z.get(site)
        n = len(self.z) - (own is not None)
        if n < max(min_others, 1):
            return False
        threshold = -self.down_z / 2
        below = self._half - (own is not None and own <= threshold)
        # The median is at or below the threshold once more than half are; above it once fewer than
        # half are; with exactly half (n even) it is the mean of one value on each side: compute it.
        if 2 * below > n:
            return True
        if 2 * below < n:
            return False
        return median([z for s, z in self.z.items() if s != site]) <= threshold
