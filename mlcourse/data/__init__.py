"""Data for the course: Omniglot classes, sinusoid tasks, and episodic samplers."""

from mlcourse.data.episodes import Episode, EpisodeSampler
from mlcourse.data.omniglot import ClassImages, OmniglotError, load_omniglot
from mlcourse.data.sinusoid import SinusoidTasks

__all__ = ["ClassImages", "Episode", "EpisodeSampler", "OmniglotError", "SinusoidTasks", "load_omniglot"]
