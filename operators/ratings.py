"""Every possible ``(question, rating)`` pair of the catalogue, numbered.

A window's histogram is then one flat list (one increment per rating, ``offset[question] + rating``)
and one matrix product turns it into every question's count, sum, bottom and top box.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from boucle.config.settings import Settings

__all__ = ["RatingLayout"]

Scales = dict[str, tuple[int, int, int]]  # question -> (max, bottom_max, top_min)


class RatingLayout:
    """Questions in name order, each rating ``0..max`` at ``offset + rating``.

    Layouts are interned (:meth:`with_scales`): every site's windows share one.

    >>> layout = RatingLayout.with_scales({"nps": (10, 6, 9), "csat": (5, 2, 4)})
    >>> layout.offset["csat"], layout.offset["nps"] + 10, layout.size
    (0, 16, 17)
    >>> layout is RatingLayout.with_scales({"csat": (5, 2, 4), "nps": (10, 6, 9)})
    True
    """

    def __init__(self, scales: Scales) -> None:
        self.offset: dict[str, int] = {}
        self.spans: list[tuple[str, int, int, int, int]] = []  # question, start, end, bottom end, top start
        offset = 0
        for question in sorted(scales):
            high, bottom_max, top_min = scales[question]
            self.offset[question] = offset
            self.spans.append((question, offset, offset + high + 1, offset + bottom_max + 1, offset + top_min))
            offset += high + 1
        self.size = offset
        self._names = [(4 * q, span[0]) for q, span in enumerate(self.spans)]  # (column, question)
        # One product turns a histogram into every question's (n, sum, bottom n, top n).
        self.totals = np.zeros((offset, 4 * len(self.spans)), dtype=np.int64)
        for q, (_, begin, end, bottom_end, top_begin) in enumerate(self.spans):
            self.totals[begin:end, 4 * q] = 1
            self.totals[begin:end, 4 * q + 1] = np.arange(end - begin)
            self.totals[begin:bottom_end, 4 * q + 2] = 1
            self.totals[top_begin:end, 4 * q + 3] = 1

    def summarise(self, histogram: list[int]) -> list[tuple[str, int, int, int, int]]:
        """``(question, n, sum, bottom n, top n)`` of every question with ratings in ``histogram``.

        >>> layout = RatingLayout.with_scales({"csat": (5, 2, 4)})
        >>> layout.summarise([0, 1, 0, 0, 2, 0])
        [('csat', 3, 9, 1, 2)]
        """
        return self.summarise_many([histogram])[0]

    def summarise_many(self, histograms: list[list[int]]) -> list[list[tuple[str, int, int, int, int]]]:
        """:meth:`summarise` of each histogram, with one matrix product for all of them.

        >>> layout = RatingLayout.with_scales({"csat": (5, 2, 4)})
        >>> layout.summarise_many([[0, 1, 0, 0, 2, 0], [0, 0, 0, 0, 0, 0]])
        [[('csat', 3, 9, 1, 2)], []]
        """
        totals = (np.array(histograms, dtype=np.int64) @ self.totals).tolist()
        names = self._names
        return [[(name, *row[i : i + 4]) for i, name in names if row[i]] for row in totals]

    @staticmethod
    def with_scales(scales: Scales) -> RatingLayout:
        return _interned(tuple(sorted(scales.items())))


def scales_of(settings: Settings) -> Scales:
    return {name: (m.max, m.bottom_max, m.top_min) for name, m in settings.questions().items()}


@lru_cache(maxsize=None)
def _interned(scales: tuple[tuple[str, tuple[int, int, int]], ...]) -> RatingLayout:
    return RatingLayout(dict(scales))
