"""Reports: the screen's ranked tables."""

from .aggregate import aggregate

__all__ = ["aggregate"]
