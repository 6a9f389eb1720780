"""Size buckets: the few padded sizes a compiled model runs, and that the plan groups chunks by.

Pure integer arithmetic, importable at every Snakemake start (no MLX): the plan puts the queries
of one token bucket in a chunk, so an inference job compiles one shape, and `model.buckets`
pads each task's features to these sizes.
"""

from __future__ import annotations

import math


def bucket(n: int, steps: int, multiple: int) -> int:
    """The smallest size >= n of the form (1 + k / steps) * 2^e, rounded up to `multiple`.

    With `steps` steps per doubling, padding adds at most 1 / steps of the size.
    """
    if n <= multiple:
        return multiple
    power = 2 ** math.floor(math.log2(n))
    size = next(size for k in range(steps + 1) if (size := power * (steps + k) // steps) >= n)
    return -(-size // multiple) * multiple


# Queries of at most this many tokens share one bucket: on a GPU they cost what a query of this
# size costs (the run is bound by kernel launches there), and a screen of peptides and small
# complexes then compiles one graph and fills one kind of chunk.
SMALLEST_TOKEN_BUCKET = 64


def token_bucket(n_token: int) -> int:
    """At most 1/4 more tokens: few graphs to compile (each costs seconds on a GPU)."""
    return max(SMALLEST_TOKEN_BUCKET, bucket(n_token, 4, 16))


def atom_bucket(n_atom: int) -> int:
    """At most 1/4 more atoms (atom attention is over local windows of 32)."""
    return bucket(n_atom, 4, 32)
