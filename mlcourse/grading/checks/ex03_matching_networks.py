"""Checks of chapter 3's exercises: the attention of a matching network and its attention-weighted prediction.

The grader draws embeddings and weights from a seed, runs the student's functions on them in the
student's kernel, and judges the returned tensors here, in its own process, against mlcourse's
reference implementation (`attention`, `attend_labels`) and against properties that any correct
solution has.

Hidden value checks of `matching_predict` use support sets in shuffled order (never class by class),
so that a function that assumes the sampler's sorted order fails them as any wrong value does. One
hidden check of each function goes through the kernel-side adapter `outputs_gradients_inputs`: the
gradient of a weighted sum of the outputs, taken through the student's own graph (both functions
are trained through), is compared with the reference's, and the inputs after the call with the
inputs before (an in-place normalisation such as `query /= query.norm(...)` shows there).
"""

import torch

from mlcourse.grading.judges import (ADAPTER, adapted, close, expect_shape, gradients_match, reference_gradients,
                                     single, untouched)
from mlcourse.grading.spec import Exercise, Fail, assemble
from mlcourse.methods.matching import attend_labels, attention

EXERCISE = "03_matching_networks"
DIM = 16  # embedding size of the grader's inputs


def reference_attention(query, support, scale):
    """mlcourse's softmax over the support of scaled cosine similarities."""
    return attention(query, support, scale)


def reference_matching_predict(weights, support_y, n_way):
    """mlcourse's attention-weighted sum of one-hot support labels."""
    return attend_labels(weights, support_y, n_way)


REFERENCES = {"attention": reference_attention, "matching_predict": reference_matching_predict}


def _close(actual: torch.Tensor, expected: torch.Tensor, why: str) -> None:
    """Fail with `why` unless the values agree (they are probabilities: an absolute tolerance)."""
    close(actual, expected, why, relative=False)


def _rows(out, n_rows, n_cols, what, formula):
    t = single(out, what)
    expect_shape(t, (n_rows, n_cols), what, formula)
    return t


# ---- attention -------------------------------------------------------------------------------

def _attention_checks(ex: Exercise, g: torch.Generator) -> None:
    fn = ex.function("attention", "attention(query, support, scale)",
                     references=("mlcourse.methods.matching.attention", "mlcourse.methods.protonet.cosine_similarity"))

    def case(n_queries, n_support, scale, unequal=False):
        q, s = torch.randn(n_queries, DIM, generator=g), torch.randn(n_support, DIM, generator=g)
        if unequal:  # each embedding multiplied by its own factor in about [0.01, 100]
            q = q * torch.exp(2 * torch.randn(n_queries, 1, generator=g))
            s = s * torch.exp(2 * torch.randn(n_support, 1, generator=g))
        return q, s, scale

    def match(cases, why):
        def judge(*outs):
            for out, (q, s, scale) in zip(outs, cases):
                w = _rows(out, len(q), len(s), "the attention weights", "(n_queries, n_support)")
                _close(w, reference_attention(q, s, scale), why)
        return judge

    why = "the weights differ from a softmax over the support set of scale times the cosine similarities"
    first_args = [case(6, 10, 1.0), case(3, 4, 1.0)]
    first = [ex.call(fn.name, *a) for a in first_args]

    def format_(*outs):
        for out, (q, s, _) in zip(outs, first_args):
            w = _rows(out, len(q), len(s), "the attention weights", "(n_queries, n_support)")
            if not w.is_floating_point() or (w < 0).any() or not torch.allclose(w.double().sum(1),
                                                                                  torch.ones(len(q)).double()):
                raise Fail("each query's weights should be at least 0 and sum to 1 over the support set")

    fn.check("returns (n_queries, n_support) weights, each row summing to 1", 1, first, format_, hidden=False,
             needs=match(first_args, why))
    fn.check("a softmax over the cosine similarities", 1, first, match(first_args, why), hidden=False)
    cases = [case(5, 8, 10.0), case(4, 6, 0.5), case(2, 5, 30.0)]
    fn.check("other scales (the similarities are multiplied by scale before the softmax)", 1,
             [ex.call(fn.name, *a) for a in cases], match(cases, why))
    cases = [case(6, 9, 5.0, unequal=True), case(4, 1, 1.0), case(1, 60, 5.0), case(5, 7, 3.0, unequal=True)]
    weights = [torch.randn(len(q), len(s), generator=g) for q, s, _ in cases]

    def unequal(*outs):
        for out, a, w in zip(outs, cases, weights):
            (weights_,), grads, after = adapted(out, a, ("the attention weights",))
            expect_shape(weights_, (len(a[0]), len(a[1])), "the attention weights", "(n_queries, n_support)")
            _close(weights_, reference_attention(*a), why + ": normalise each embedding to unit length before the "
                                                           "dot products")
            gradients_match(grads, reference_gradients(reference_attention, a, (w,)),
                            "the gradient that reaches the query and support embeddings differs from that of the "
                            "softmax of the cosine similarities")
            untouched(after, a, "attention")

    fn.check("embeddings of unequal lengths (cosine, not dot product), one or many support images; differentiable, "
             "inputs left as they were", 1, [ex.call(fn.name, 3, *a, w, adapter=ADAPTER)
                                             for a, w in zip(cases, weights)], unequal)

    q, s, scale = case(10, 8, 5.0)
    perm = torch.randperm(len(q), generator=g)
    keys = [ex.call(fn.name, q, s, scale), ex.call(fn.name, q[perm], s, scale), ex.call(fn.name, q[:1], s, scale)]

    def independent(whole, permuted, one):
        whole = _rows(whole, len(q), len(s), "the attention weights", "(n_queries, n_support)")
        why = "a query's weights depend on the other queries: softmax over the support set, one query at a time"
        _close(_rows(permuted, len(q), len(s), "the attention weights", "(n_queries, n_support)"), whole[perm], why)
        _close(_rows(one, 1, len(s), "the attention weights", "(n_queries, n_support)"), whole[:1], why)

    fn.check("each query attends on its own (order and number of queries do not matter)", 1, keys, independent,
             needs=match([(q, s, scale)], why))


# ---- attention-weighted prediction -----------------------------------------------------------

def _predict_checks(ex: Exercise, g: torch.Generator) -> None:
    fn = ex.function("matching_predict", "matching_predict(weights, support_y, n_way)",
                     references=("mlcourse.methods.matching.attend_labels", "mlcourse.methods.matching.MatchingNet"),
                     flag_names=("attend_labels", "MatchingNet"))

    def case(n_queries, n_way, k_shot, shuffled=False):
        support_y = torch.arange(n_way).repeat_interleave(k_shot)
        if shuffled and n_way > 1:
            perm = torch.randperm(len(support_y), generator=g)
            while torch.equal(support_y[perm], support_y):  # another order than class by class
                perm = torch.randperm(len(support_y), generator=g)
            support_y = support_y[perm]
        weights = torch.softmax(3 * torch.randn(n_queries, len(support_y), generator=g), dim=1)
        return weights, support_y, n_way

    def match(cases, why):
        def judge(*outs):
            for out, (w, sy, n) in zip(outs, cases):
                p = _rows(out, len(w), n, "the class probabilities", "(n_queries, n_way)")
                _close(p, reference_matching_predict(w, sy, n), why)
        return judge

    why = "a class's probability differs from the sum of the weights of that class's support images"
    first_args = [case(5, 5, 2), case(4, 3, 1)]
    first = [ex.call(fn.name, *a) for a in first_args]

    def format_(*outs):
        for out, (w, _, n) in zip(outs, first_args):
            p = _rows(out, len(w), n, "the class probabilities", "(n_queries, n_way)")
            if not p.is_floating_point() or not torch.allclose(p.double().sum(1), torch.ones(len(w)).double()):
                raise Fail("each query's class probabilities should be floats that sum to 1")

    fn.check("returns (n_queries, n_way) probabilities, each row summing to 1", 1, first, format_, hidden=False,
             needs=match(first_args, why))
    fn.check("each class gets the summed weight of its support images", 1, first, match(first_args, why),
             hidden=False)
    cases = [case(6, 5, 5, shuffled=True), case(3, 30, 1, shuffled=True), case(4, 1, 3),
             case(5, 6, 3, shuffled=True)]
    grad_weights = [torch.randn(len(w), n, generator=g) for w, _, n in cases]

    def any_episode(*outs):
        for out, a, gw in zip(outs, cases, grad_weights):
            (p,), grads, after = adapted(out, a, ("the class probabilities",))
            expect_shape(p, (len(a[0]), a[2]), "the class probabilities", "(n_queries, n_way)")
            _close(p, reference_matching_predict(*a), why + " (take the classes from support_y; no second softmax)")
            gradients_match(grads, reference_gradients(reference_matching_predict, a, (gw,)),
                            "the gradient that reaches the attention weights differs from that of their sum per class")
            untouched(after, a, "matching_predict")

    fn.check("k-shot, many ways, a single way, the support set in any order; differentiable, inputs left as they "
             "were", 1, [ex.call(fn.name, 3, *a, gw, adapter=ADAPTER) for a, gw in zip(cases, grad_weights)],
             any_episode)

    w, sy, n = case(9, 5, 2, shuffled=True)
    perm = torch.randperm(len(w), generator=g)
    keys = [ex.call(fn.name, w, sy, n), ex.call(fn.name, w[perm], sy, n), ex.call(fn.name, w[:1], sy, n)]

    def independent(whole, permuted, one):
        whole = _rows(whole, len(w), n, "the class probabilities", "(n_queries, n_way)")
        why = "a query's probabilities depend on the other queries: predict each query on its own"
        _close(_rows(permuted, len(w), n, "the class probabilities", "(n_queries, n_way)"), whole[perm], why)
        _close(_rows(one, 1, n, "the class probabilities", "(n_queries, n_way)"), whole[:1], why)

    fn.check("each query predicted on its own", 1, keys, independent, needs=match([(w, sy, n)], why))


def build(seed: int) -> Exercise:
    """Chapter 3's graded functions, the grader's calls (inputs drawn from `seed`) and the checks."""
    # the solution trains a small network on Omniglot: about 15 s in all with the kernel's one thread on a 2-core
    # CPU; the limits leave room for a slow or busy machine
    return assemble(EXERCISE, seed, [_attention_checks, _predict_checks], uses_omniglot=True,
                    limits={"timeout": 300, "cell_timeout": 180, "call_timeout": 10})
