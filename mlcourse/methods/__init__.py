"""Few-shot methods. Each is a `Method`: it scores queries given a support set."""

from mlcourse.methods.base import Method
from mlcourse.methods.nearest import PixelNearestNeighbour

__all__ = ["Method", "PixelNearestNeighbour"]
