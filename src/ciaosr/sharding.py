"""Which process runs which item: a deterministic, balanced split of a list of items.

Items (images) have a cost (e.g. their output pixel count, read from the file header)
and every process of a job computes the same split from the same costs, so no process
has to tell the others what it will do.
"""

from __future__ import annotations

import heapq
from typing import Sequence


def balance(costs: Sequence[float], parts: int) -> list[list[int]]:
    """Split the indices of ``costs`` into ``parts`` lists of nearly equal total cost.

    Longest processing time first: the items in decreasing cost (equal costs in index
    order), each to the part whose total is least so far (equal totals: the part with
    fewer items, then the lowest part; so items of cost 0 are spread too).
    The largest total is at most 4/3 of the best split's (Graham, 1969). Each part's
    indices come in increasing order; every index is in exactly one part. The result
    depends on nothing but ``costs`` and ``parts``.
    """
    if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
        raise ValueError(f"parts must be a whole number of at least 1, got {parts!r}")
    if any(not c >= 0 for c in costs):  # also refuses NaN
        raise ValueError("costs must be non-negative numbers")
    shares: list[list[int]] = [[] for _ in range(parts)]
    heap = [(0.0, 0, p) for p in range(parts)]  # (total so far, items, part): the least first
    for i in sorted(range(len(costs)), key=lambda k: (-costs[k], k)):
        total, count, p = heapq.heappop(heap)
        shares[p].append(i)
        heapq.heappush(heap, (total + costs[i], count + 1, p))
    return [sorted(s) for s in shares]


__all__ = ["balance"]
