"""What feedback may show: the student's code's doings, never what the grader's machine holds.

Two rules, both applied in the grader's process:

- An error that a graded function raised (written by the student's own process, so any text at all)
  is shown as its exception type only, and its message only when it is one of the harness's or the
  stubs' own fixed messages. The message of a graded call is computed from the grader's inputs, so
  any free text there could carry them (digits or not), and an earlier call's inputs too.
- Every other text that reaches a feedback or grades file (the errors of the notebook's cells, which
  run before any input of the grader exists, statuses, notes) has the grader's strings taken out: its
  folders and any absolute path outside the sandbox's public ones, its command line, the values of its
  environment variables, its secret, and the other students' names.
"""

import builtins
import os
import re
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from mlcourse.grading import checks
from mlcourse.grading.spec import Exercise

# exception types shown by name: Python's own and the harness's; any other class name could be made up to carry data
EXCEPTIONS = {name for name, obj in vars(builtins).items() if isinstance(obj, type) and issubclass(obj, BaseException)}
EXCEPTIONS |= {"CallTimeout", "OutOfMemoryError", "LinAlgError"}
HIDDEN = "its message is not shown: it was computed from the grader's inputs; run the notebook's own checks to see it"
PUBLIC_PATHS = ("/home/student", "/opt/course", "/opt/data", "/usr/", "/proc/", "/dev/")
PATH = re.compile(r"(?<![\w.~-])/[^\s'\"`,;:()\[\]{}<>|]+")
MIN_SECRET = 4  # shorter strings (a "1", "/usr") are too common to mean anything
MIN_WORD = 8  # the same for the values of the command line and the environment


def _harness_messages(exercise: Exercise) -> list[re.Pattern]:
    names = "|".join(re.escape(fn.name) for fn in exercise.functions)
    refs = "|".join(re.escape(p.rsplit(".", 1)[1]) for fn in exercise.functions for p in fn.references)
    return [re.compile(p) for p in (
        r"CallTimeout: ran past its time limit of [0-9.]+ s",
        r"CallTimeout: skipped: an earlier call ran past its time limit",
        rf"NameError: ({names}) is not (defined in the notebook|a function)",
        rf"RuntimeError: ({refs}) from mlcourse is not available during grading: the graded function must be your "
        r"own code",
    )]


def public_error(text: str, exercise: Exercise) -> str:
    """An error written by the student's process, as feedback may show it."""
    text = text.strip()
    if any(p.fullmatch(text) for p in _harness_messages(exercise)):
        return text
    kind = text.split(":", 1)[0].strip()
    return f"{kind if kind in EXCEPTIONS else 'an exception'} ({HIDDEN})"


def grader_secrets(*folders) -> list[str]:
    """The grader's own strings that must not reach feedback: folders, command line, environment values, secret."""
    folders = [f for x in folders for f in (x if isinstance(x, (list, tuple)) else [x])]
    found = {str(f) for f in folders if f}
    found |= {str(Path(f).resolve()) for f in folders if f}
    found |= {sys.prefix, sys.base_prefix, os.path.dirname(sys.executable), os.getcwd(), tempfile.gettempdir(),
              str(Path.home()), str(Path(checks.__file__).resolve().parents[2])}
    words = set(sys.argv)  # the command line and the environment: long values only ("root" is also a word)
    for value in os.environ.values():
        words |= {value, *value.split(os.pathsep)}
    found |= {w for w in words if len(w) >= MIN_WORD and not w.startswith("-")}
    secret = checks.grader_secret()
    if secret:
        found.add(secret)
    public = {"/", "/usr", "/tmp", "/bin", "/home", "C.UTF-8", "true", "false", "python", "python3"}
    return sorted((s for s in found if len(s) >= MIN_SECRET and s not in public), key=len, reverse=True)


def clean(text: str, secrets: list[str], others: list[str]) -> str:
    """`text` without the grader's strings, other students' names, or absolute paths outside the sandbox's own."""
    for s in secrets:
        text = text.replace(s, "<hidden>")
    for name in sorted((n for n in others if len(n) >= 3), key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", "<student>", text, flags=re.IGNORECASE)
    return PATH.sub(lambda m: m[0] if m[0].startswith(PUBLIC_PATHS) else "<path>", text)


def graded(g, secrets: list[str], others: list[str]):
    """A submission's grade with every text that reaches its files cleaned."""
    return replace(g, status=[clean(s, secrets, others) for s in g.status],
                   notes=[clean(n, secrets, others) for n in g.notes],
                   results=[replace(r, message=clean(r.message, secrets, others)) for r in g.results])
