"""mlcourse: the support package of the meta-learning course."""

from mlcourse.utils import full_mode, get_device, mean_ci, seed_everything

__all__ = ["full_mode", "get_device", "mean_ci", "seed_everything"]
__version__ = "0.1.0"
