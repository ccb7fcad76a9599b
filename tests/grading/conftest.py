"""Grading tests never touch the real home: the grader secret that grading makes lives in a temporary folder."""

import os
import tempfile

import pytest


@pytest.fixture(scope="session", autouse=True)
def private_config():
    """XDG_CONFIG_HOME (where the grader keeps its secret) in a temporary folder, for child processes too."""
    saved = os.environ.get("XDG_CONFIG_HOME")
    with tempfile.TemporaryDirectory(prefix="mlcourse-test-config-") as folder:
        os.environ["XDG_CONFIG_HOME"] = folder
        yield folder
    os.environ.pop("XDG_CONFIG_HOME") if saved is None else os.environ.__setitem__("XDG_CONFIG_HOME", saved)
