"""The code the grader runs inside the student's kernel: call the graded functions on the grader's inputs.

Nothing here decides a grade. The kernel only turns the grader's inputs into the student's outputs,
as plain tensors in files; the grader reads them back with `torch.load(weights_only=True)`.

This module and `adapters` are not in the kernel's copy of mlcourse: the grader sends their source in
a cell that runs after the student's cells, into namespaces of their own, so that no cell can patch
them beforehand. What they rely on in torch and the standard library can still be replaced by the
student's code; `tampered()` names what was, and the grader flags the submission for the instructor.
"""

import contextlib
import json
import os
import random
import signal
import sys
import sysconfig

import torch

MAX_NUMEL = 20_000_000  # larger outputs are refused (no correct answer here is anywhere near)
ADAPTERS = None  # in the kernel, the namespace of the adapters' source (set by the grader's setup cell)

# what the calls rely on; a replacement made by the notebook's code flags the submission
WATCHED = ("torch.Generator", "torch.manual_seed", "torch.save", "torch.load", "torch.as_tensor", "torch.autograd.grad",
           "torch.func.functional_call", "torch.Tensor.clone", "torch.Tensor.detach", "torch.Tensor.requires_grad_",
           "torch.Tensor.to", "torch.Tensor.contiguous", "random.seed", "numpy.random.seed", "json.dump",
           "os.replace", "builtins.open", "builtins.isinstance", "builtins.getattr")
LIBRARIES = tuple({q for key in ("stdlib", "platstdlib", "purelib", "platlib")
                   for q in (sysconfig.get_path(key), os.path.realpath(sysconfig.get_path(key)))})


class CallTimeout(BaseException):
    """A graded function ran past its time limit (a BaseException, so that `except Exception` cannot swallow it)."""


def encode_args(args) -> list:
    """The call's arguments as weights-only-loadable values (a generator becomes {'generator_seed': s})."""
    from mlcourse.grading.spec import Seeded

    return [{"generator_seed": a.seed} if isinstance(a, Seeded) else a for a in args]


def encode_call(key: str, call) -> dict:
    """One `spec.Call` as the kernel receives it, under its key."""
    return {"key": key, "function": call.function, "args": encode_args(call.args), "global_seed": call.global_seed,
            "adapter": call.adapter}


def _adapter(name: str):
    """The kernel-side adapter of that name (mlcourse.grading.adapters), which calls the graded function."""
    adapters = ADAPTERS
    if adapters is None:
        from mlcourse.grading import adapters as module

        adapters = vars(module)
    if name not in adapters["__all__"]:
        raise ValueError(f"no adapter {name!r} in mlcourse.grading.adapters")
    return adapters[name]


def _foreign(obj) -> bool:
    """Whether `obj` comes from code outside the interpreter's libraries (a notebook's cell, a file it wrote)."""
    if isinstance(obj, type):
        return any(_foreign(v) for c in obj.__mro__ for v in vars(c).values() if hasattr(v, "__code__"))
    code = getattr(obj, "__code__", None) or getattr(getattr(obj, "__func__", None), "__code__", None)
    if code is not None:  # compiled extensions (Cython) name their files relative to the library
        name = code.co_filename
        return name.startswith("<") or (os.path.isabs(name) and not name.startswith(LIBRARIES))
    return type(obj).__module__ != "builtins" or not callable(obj)


def tampered() -> list[str]:
    """The names in WATCHED whose objects the notebook's code replaced (a module not imported is left alone)."""
    found = []
    for path in WATCHED:
        module, *names = path.split(".")
        obj = sys.modules.get(module)
        if obj is None:
            continue
        for name in names:
            obj = getattr(obj, name, None)
        if obj is None or _foreign(obj):
            found.append(path)
    return found


def _decode(arg):
    if isinstance(arg, dict) and set(arg) == {"generator_seed"}:
        return torch.Generator().manual_seed(int(arg["generator_seed"]))
    if isinstance(arg, torch.Tensor):
        return arg.clone()  # a function that modifies its input cannot change the next call's input
    return arg


def _seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    with contextlib.suppress(ImportError):
        import numpy

        numpy.random.seed(seed)


def _plain(value) -> torch.Tensor:
    """A returned value as a plain, dense CPU tensor."""
    if isinstance(value, torch.Tensor):
        t = value.detach()
    elif isinstance(value, (bool, int, float)) or type(value).__module__ == "numpy":
        t = torch.as_tensor(value)
    else:
        raise TypeError(f"returned a {type(value).__name__} where a tensor was expected")
    if t.layout != torch.strided:
        t = t.to_dense()
    if t.numel() > MAX_NUMEL:
        raise ValueError(f"returned a tensor of {t.numel()} elements, far more than expected")
    return t.as_subclass(torch.Tensor).to("cpu").clone().contiguous()


def to_tensors(value) -> list[torch.Tensor]:
    """What a graded function returned, as a list of plain tensors (one per returned item)."""
    items = list(value) if isinstance(value, (tuple, list)) else [value]
    return [_plain(v) for v in items]


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Raise CallTimeout in the main thread after `seconds` (no limit when not in the main thread)."""
    if not (seconds and hasattr(signal, "setitimer") and _in_main_thread()):
        yield
        return

    def alarm(signum, frame):
        raise CallTimeout(f"ran past its time limit of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds, 0.5)  # and again every 0.5 s, should the function catch it
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def short_error(err: BaseException) -> str:
    """One line, at most 200 characters: the exception's type and message."""
    text = f"{type(err).__name__}: {err}".replace("\n", " ").strip()
    return text[:200]


def call_one(function, call: dict, time_limit: float) -> list[torch.Tensor]:
    """Call `function` on one call's decoded arguments (through the call's adapter, if it names one) under the time
    limit; its outputs as plain tensors."""
    args = [_decode(a) for a in call["args"]]
    if call.get("adapter"):
        function, args = _adapter(call["adapter"]), [function, *args]
    _seed(int(call["global_seed"]))
    with _time_limit(time_limit):
        value = function(*args)
    return to_tensors(value)


def call_all(calls: list[dict], namespace: dict, time_limit: float, on_result=None) -> tuple[dict, dict]:
    """Run every call with the functions found in `namespace`: ({key: tensors}, {key: error})."""
    outputs, errors, timed_out = {}, {}, set()
    for call in calls:
        key, name = call["key"], call["function"]
        function = namespace.get(name)
        try:
            if name in timed_out:
                raise CallTimeout("skipped: an earlier call ran past its time limit")
            if not callable(function):
                raise NameError(f"{name} is not defined in the notebook" if function is None
                                else f"{name} is not a function")
            outputs[key] = call_one(function, call, time_limit)
        except BaseException as err:  # SystemExit, CallTimeout, KeyboardInterrupt included: the call failed
            errors[key] = short_error(err)
            if isinstance(err, CallTimeout):
                timed_out.add(name)
        if on_result is not None:
            on_result(key, outputs.get(key), errors.get(key))
    return outputs, errors


def run_calls(inputs_path: str, results_dir: str, time_limit: float, namespace: dict) -> None:
    """Kernel side: load the grader's calls, make them, and save each call's tensors and the errors as JSON."""
    calls = torch.load(inputs_path, weights_only=True)["calls"]
    errors_path = os.path.join(results_dir, "errors.json")
    errors = {}

    def save(key, tensors, error):
        if tensors is not None:
            torch.save({f"{key}:{i}": t for i, t in enumerate(tensors)}, os.path.join(results_dir, f"{key}.pt"))
        if error is not None:
            errors[key] = error
            with open(errors_path + ".tmp", "w") as f:
                json.dump(errors, f)
            os.replace(errors_path + ".tmp", errors_path)

    call_all(calls, namespace, time_limit, on_result=save)


_STATE: dict = {}  # the calls loaded by load_calls, for run_call (one cell per call)


def load_calls(inputs_path: str, results_dir: str, time_limit: float, namespace: dict) -> None:
    """Kernel side: load the grader's calls, to be made one at a time by `run_call`, each in a cell of its own."""
    calls = torch.load(inputs_path, weights_only=True)["calls"]
    _STATE.update(calls={c["key"]: c for c in calls}, results=results_dir, limit=time_limit, namespace=namespace,
                  errors={}, timed_out=set(), tampered=[])
    _note_tampering()


def _note_tampering() -> None:
    """Write tampered.json when the notebook's code has replaced more of what the calls rely on."""
    found = tampered()
    if len(found) > len(_STATE["tampered"]):
        _STATE["tampered"] = found
        with open(os.path.join(_STATE["results"], "tampered.json"), "w") as f:
            json.dump(found, f)


def run_call(key: str) -> None:
    """Kernel side: make one loaded call; save its tensors, or its error into errors.json."""
    call, name = _STATE["calls"][key], _STATE["calls"][key]["function"]
    errors, results = _STATE["errors"], _STATE["results"]
    function = _STATE["namespace"].get(name)
    try:
        if name in _STATE["timed_out"]:
            raise CallTimeout("skipped: an earlier call ran past its time limit")
        if not callable(function):
            raise NameError(f"{name} is not defined in the notebook" if function is None else f"{name} is not a function")
        tensors = call_one(function, call, _STATE["limit"])
        _note_tampering()
        torch.save({f"{key}:{i}": t for i, t in enumerate(tensors)}, os.path.join(results, f"{key}.pt"))
        return
    except BaseException as err:  # SystemExit, CallTimeout, KeyboardInterrupt included: the call failed
        errors[key] = short_error(err)
        if isinstance(err, CallTimeout):
            _STATE["timed_out"].add(name)
    _note_tampering()
    path = os.path.join(results, "errors.json")
    with open(path + ".tmp", "w") as f:
        json.dump(errors, f)
    os.replace(path + ".tmp", path)
