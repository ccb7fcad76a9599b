"""The code that runs in the student's kernel: calls, limits, plain tensors out, references disabled."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from mlcourse.grading import adapters
from mlcourse.grading.harness import call_all, encode_args, encode_call, run_calls, to_tensors
from mlcourse.grading.spec import Exercise, Seeded


def calls(*specs):
    return [{"key": f"c{i}", "function": fn, "args": encode_args(args), "global_seed": 0}
            for i, (fn, args) in enumerate(specs)]


def test_outputs_become_plain_tensors():
    class Sub(torch.Tensor):
        pass

    out = to_tensors((torch.ones(2, requires_grad=True) * 2, 3, 0.5, np.float32(1.5), torch.ones(2).as_subclass(Sub)))
    assert all(type(t) is torch.Tensor and not t.requires_grad for t in out)
    assert [t.tolist() for t in out] == [[2.0, 2.0], 3, 0.5, 1.5, [1.0, 1.0]]
    assert to_tensors(torch.eye(2).to_sparse())[0].layout == torch.strided
    with pytest.raises(TypeError, match="returned a str"):
        to_tensors("all correct")


def test_errors_timeouts_and_exits_are_caught_per_call():
    def slow(x):
        while True:
            try:
                pass
            except BaseException:  # even a function that swallows the first alarm is stopped
                pass

    def leave(x):
        sys.exit(0)

    ns = {"double": lambda x: 2 * x, "bad": lambda x: 1 / 0, "slow": slow, "leave": leave, "text": "no function"}
    outputs, errors = call_all(calls(("double", (torch.ones(2),)), ("bad", (1,)), ("slow", (1,)), ("slow", (2,)),
                                     ("leave", (1,)), ("missing", (1,)), ("text", (1,))), ns, time_limit=0.3)
    assert outputs["c0"][0].tolist() == [2.0, 2.0]
    assert errors["c1"].startswith("ZeroDivisionError")
    assert errors["c2"] == "CallTimeout: ran past its time limit of 0.3 s"
    assert errors["c3"].endswith("skipped: an earlier call ran past its time limit")
    assert errors["c4"] == "SystemExit: 0"
    assert errors["c5"] == "NameError: missing is not defined in the notebook"
    assert errors["c6"] == "NameError: text is not a function"


def test_generators_and_inputs_are_fresh_for_every_call():
    def draw(x, g):
        x.add_(1)  # modifying an input must not leak into the next call
        return x, torch.randperm(10, generator=g), torch.randperm(10)

    specs = [("draw", (torch.zeros(1), Seeded(5))), ("draw", (torch.zeros(1), Seeded(5)))]
    outputs, errors = call_all(calls(*specs), {"draw": draw}, time_limit=5)
    a, b = outputs["c0"], outputs["c1"]
    assert not errors and a[0].item() == b[0].item() == 1
    assert torch.equal(a[1], b[1]) and torch.equal(a[2], b[2])  # the global seed is set before every call too


def test_an_adapter_calls_the_function_with_what_it_builds(monkeypatch):
    def scaled(function, factor, x):  # builds a callable argument that the grader could not send
        return function(lambda t: factor * t, x)

    monkeypatch.setattr(adapters, "scaled", scaled, raising=False)
    monkeypatch.setattr(adapters, "__all__", [*adapters.__all__, "scaled"])
    ex = Exercise("00_tiny")
    ex.call("apply", 3.0, torch.ones(2), adapter="scaled")
    ex.call("double", torch.ones(2))
    with pytest.raises(ValueError, match="no adapter 'nothing'"):
        ex.call("apply", 1, adapter="nothing")
    calls = [encode_call(k, c) for k, c in ex.calls.items()]
    outputs, errors = call_all(calls, {"apply": lambda f, x: f(x), "double": lambda x: 2 * x}, time_limit=5)
    assert not errors and outputs["c0"][0].tolist() == [3.0, 3.0] and outputs["c1"][0].tolist() == [2.0, 2.0]
    calls[0]["adapter"] = "__name__"  # only the adapters the module lists can be called
    assert call_all(calls[:1], {"apply": print}, time_limit=5)[1]["c0"].startswith("ValueError: no adapter")


def test_run_calls_writes_tensors_and_errors(tmp_path):
    torch.save({"calls": calls(("double", (torch.arange(3),)), ("bad", (1,)))}, tmp_path / "inputs.pt")
    run_calls(str(tmp_path / "inputs.pt"), str(tmp_path), 1.0, {"double": lambda x: (2 * x, x), "bad": lambda x: x.y})
    saved = torch.load(tmp_path / "c0.pt", weights_only=True)
    assert set(saved) == {"c0:0", "c0:1"} and saved["c0:0"].tolist() == [0, 2, 4]
    assert json.loads((tmp_path / "errors.json").read_text()) == {
        "c1": "AttributeError: 'int' object has no attribute 'y'"}


def test_disable_replaces_references_everywhere_mlcourse_holds_them():
    code = ("from mlcourse.grading.harness import disable\n"
            "import mlcourse.data, mlcourse.data.episodes, mlcourse.methods.nearest as n\n"
            "disable(['mlcourse.data.episodes.EpisodeSampler', 'mlcourse.methods.nearest.min_per_class'])\n"
            "from mlcourse.data import EpisodeSampler\n"
            "for f in (EpisodeSampler, mlcourse.data.episodes.EpisodeSampler, n.min_per_class):\n"
            "    try:\n        f(1, 2, 3)\n    except RuntimeError as err:\n        print(err)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.count("not available during grading") == 3
