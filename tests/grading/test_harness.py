"""The code that runs in the student's kernel: calls, limits, plain tensors out, and tampering found."""

import json
import sys

import nbformat
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


SET05 = "05_black_box"
FORGERY_NEEDS = 60  # seconds: a small set 05 notebook, three kernels at most two at a time
# two mistakes of one point each: the order from torch's global random state, and an input changed in place
CARELESS_SEQUENCES = '''
def build_sequences(support_z, support_y, query_z, n_way, generator):
    order = torch.randperm(len(support_y))
    labels = F.one_hot(support_y, n_way).to(support_z.dtype)
    support = torch.cat([support_z, labels], dim=1)[order]
    query = torch.cat([query_z, query_z.new_zeros(len(query_z), n_way)], dim=1)
    result = torch.cat([support.expand(len(query_z), -1, -1), query[:, None]], dim=1)
    support_z.zero_()
    return result
'''
PATCHES_HARNESS = '''
import mlcourse.grading.harness as H
import mlcourse.grading.adapters as A
_call_one, _report = H.call_one, A.outputs_gradients_inputs

def call_one(function, call, time_limit):  # the global random state seeded from the generator's seed
    seeds = [a["generator_seed"] for a in call["args"] if isinstance(a, dict)]
    return _call_one(function, {**call, "global_seed": seeds[0]} if seeds else call, time_limit)

def outputs_gradients_inputs(function, n_args, *rest):  # the inputs reported as they were before the call
    before = [a.clone() for a in rest[:n_args] if isinstance(a, torch.Tensor)]
    out = _report(function, n_args, *rest)
    return (*out[:len(out) - len(before)], *before)

H.call_one, A.outputs_gradients_inputs = call_one, outputs_gradients_inputs
'''
PATCHES_TORCH = '''
_manual_seed = torch.manual_seed

class Generator(torch.Generator):  # every generator the grader makes seeds the global state too
    def manual_seed(self, seed):
        _manual_seed(seed)
        return super().manual_seed(seed)

torch.Generator, torch.manual_seed = Generator, lambda seed: None
'''


def test_a_submission_that_patches_the_grader_wins_nothing_and_is_flagged(tmp_path):
    from mlcourse.grading.grader import grade
    from tests.grading.checks.notebooks import cells
    from tests.grading.corpus import SANDBOXED

    sources = {c.source.split("def ")[1].split("(")[0]: c.source for c in cells("solutions", SET05)
               if c.cell_type == "code" and c.source.startswith("def ")}
    others = [sources[f] for f in ("causal_mask", "causal_attention", "query_loss")]
    head = "import math\nimport torch\nimport torch.nn.functional as F"
    subs = {"careless": [head, CARELESS_SEQUENCES, *others],
            "patches_harness": [head, PATCHES_HARNESS, CARELESS_SEQUENCES, *others],
            "patches_torch": [head, PATCHES_TORCH, CARELESS_SEQUENCES, *others]}
    folder = tmp_path / "subs"
    folder.mkdir()
    for name, code in subs.items():
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in code])
        (folder / f"{name}.ipynb").write_text(nbformat.writes(nb))
    _, graded, _ = grade(folder, SET05, {"timeout": FORGERY_NEEDS}, jobs=2, echo=lambda *a: None,
                         sandboxed=SANDBOXED)
    g = {x.student: x for x in graded}
    assert g["careless"].total == 18 and g["careless"].status_text == "ok", g["careless"].status_text
    patched = g["patches_harness"]
    assert patched.total == 18, [(r.name, r.message) for r in patched.results if r.message]
    assert "flagged: reaches for the grader's code" in patched.status_text, patched.status_text
    assert any("mlcourse.grading" in n for n in patched.notes), patched.notes
    forged = g["patches_torch"]
    assert "flagged: changed what the grader's calls rely on (torch.Generator, torch.manual_seed)" \
        in forged.status_text, forged.status_text
