"""Checks of chapter 4's exercises: prototypes, the distance logits and the episode loss of a ProtoNet.

The grader draws embeddings from a seed, runs the student's functions on them in the student's
kernel, and judges the returned tensors here, in its own process, against mlcourse's reference
implementation (`prototypes`, `squared_euclidean`, cross-entropy and `accuracy`) and against
properties that any correct solution has.

Hidden value checks use support sets in shuffled order (never class by class), so that a function that
assumes the sampler's sorted order fails them as any wrong value does. One hidden check of each
function goes through the kernel-side adapter `outputs_gradients_inputs`: the gradient of a weighted
sum of the outputs comes back, taken through the student's own graph, and is compared with the
reference's (prototypes computed through NumPy, or a loss returned with `.item()`, have none), and so
do the inputs as they are after the call (an in-place `unsqueeze_` shows there).
"""

import torch
import torch.nn.functional as F

from mlcourse.grading.judges import (ADAPTER, adapted, close, expect_shape, gradients_match, reference_gradients,
                                     single, unpack, untouched)
from mlcourse.grading.spec import Exercise, Fail, assemble
from mlcourse.methods.base import accuracy
from mlcourse.methods.protonet import prototypes, squared_euclidean

EXERCISE = "04_prototypical_networks"
DIM = 16  # embedding size of the grader's inputs


def reference_prototypes(support, support_y, n_way):
    """mlcourse's class means of the support embeddings."""
    return prototypes(support, support_y, n_way)


def reference_distance_logits(query, protos):
    """Minus mlcourse's squared Euclidean distances."""
    return -squared_euclidean(query, protos)


def reference_episode_loss(support, support_y, query, query_y, n_way):
    """Mean cross-entropy of the distance logits, and the accuracy of their argmax."""
    logits = -squared_euclidean(query, prototypes(support, support_y, n_way))  # (Q, n_way)
    return F.cross_entropy(logits, query_y), accuracy(logits, query_y)


REFERENCES = {
    "prototypes": reference_prototypes,
    "distance_logits": reference_distance_logits,
    "episode_loss": reference_episode_loss,
}


def _embeddings(g, n_way, k_shot, n_query, scale=1.0, shuffled=False):
    """Support and query embeddings around one random centre per class; optionally scaled, or shuffled support."""
    centres = torch.randn(n_way, DIM, generator=g)
    support = centres.repeat_interleave(k_shot, 0) + 0.7 * torch.randn(n_way * k_shot, DIM, generator=g)
    query = centres.repeat_interleave(n_query, 0) + 0.7 * torch.randn(n_way * n_query, DIM, generator=g)
    support_y = torch.arange(n_way).repeat_interleave(k_shot)  # (n_way * k_shot,)
    query_y = torch.arange(n_way).repeat_interleave(n_query)  # (n_way * n_query,)
    if shuffled and n_way > 1:
        perm = torch.randperm(len(support_y), generator=g)
        while torch.equal(support_y[perm], support_y):  # another order than class by class
            perm = torch.randperm(len(support_y), generator=g)
        support, support_y = support[perm], support_y[perm]
    return scale * support, support_y, scale * query, query_y, n_way


# ---- prototypes ------------------------------------------------------------------------------

def _prototype_checks(ex: Exercise, g: torch.Generator) -> None:
    fn = ex.function("prototypes", "prototypes(support, support_y, n_way)",
                     references=("mlcourse.methods.protonet.prototypes",))

    def calls(configs, **kw):
        args = [_embeddings(g, *cfg, **kw) for cfg in configs]
        args = [(s, sy, n) for s, sy, _, _, n in args]
        return [ex.call(fn.name, *a) for a in args], args

    def match(cases, why):
        def judge(*outs):
            for out, (s, sy, n) in zip(outs, cases):
                p = single(out, "prototypes")
                expect_shape(p, (n, s.shape[1]), "the prototypes", "(n_way, d)")
                close(p, reference_prototypes(s, sy, n), why)
        return judge

    why = "a prototype differs from the mean of its class's support embeddings"
    first, first_args = calls([(5, 3, 0), (3, 2, 0)])

    def format_(*outs):
        for out, (s, _, n) in zip(outs, first_args):
            p = single(out, "prototypes")
            expect_shape(p, (n, s.shape[1]), "the prototypes", "(n_way, d)")
            if not p.is_floating_point():
                raise Fail("the prototypes should be float tensors, like the embeddings")

    fn.check("returns one float prototype per class, shape (n_way, d)", 1, first, format_, hidden=False,
             needs=match(first_args, why))
    fn.check("each prototype is the mean of its class's support embeddings", 1, first, match(first_args, why),
             hidden=False)
    keys, args = calls([(5, 1, 0), (30, 2, 0), (1, 4, 0)], shuffled=True)
    fn.check("1-shot, many ways and a single way", 1, keys, match(args, why))
    keys, args = calls([(5, 3, 0), (8, 2, 0)], shuffled=True)
    fn.check("support set in any order (classes come from support_y)", 1, keys,
             match(args, "with the support set in another order than class by class, a prototype is not the "
                         "mean of the embeddings whose label in support_y is its class"))
    args = [(s, sy, n) for s, sy, _, _, n in (_embeddings(g, 5, 2, 0, scale=1e3, shuffled=True),
                                              _embeddings(g, 4, 3, 0, shuffled=True))]
    weights = [torch.randn(n, s.shape[1], generator=g) for s, _, n in args]
    keys = [ex.call(fn.name, 3, *a, w, adapter=ADAPTER) for a, w in zip(args, weights)]

    def differentiable(*outs):
        for out, a, w in zip(outs, args, weights):
            (p,), grads, after = adapted(out, a, ("prototypes",))
            expect_shape(p, (a[2], a[0].shape[1]), "the prototypes", "(n_way, d)")
            close(p, reference_prototypes(*a), "with large embeddings the prototypes are not the plain means: "
                                                "do not normalise")
            gradients_match(grads, reference_gradients(reference_prototypes, a, (w,)),
                            "the gradient that reaches the support embeddings differs from that of the class means")
            untouched(after, a, "prototypes")

    fn.check("embeddings of any scale (a plain mean, no normalisation), differentiable, inputs left as they were", 1,
             keys, differentiable)


# ---- distance logits -------------------------------------------------------------------------

def _logits(out, n_queries, n_way):
    logits = single(out, "logits")
    expect_shape(logits, (n_queries, n_way), "the logits", "(n_queries, n_way)")
    return logits


def _distance_checks(ex: Exercise, g: torch.Generator) -> None:
    fn = ex.function("distance_logits", "distance_logits(query, prototypes)",
                     references=("mlcourse.methods.protonet.squared_euclidean",), flag_names=("squared_euclidean",))

    def case(n_queries, n_way, scale=1.0):
        return scale * torch.randn(n_queries, DIM, generator=g), scale * torch.randn(n_way, DIM, generator=g)

    def match(cases, why):
        def judge(*outs):
            for out, (q, p) in zip(outs, cases):
                close(_logits(out, len(q), len(p)), reference_distance_logits(q, p), why)
        return judge

    first_args = [case(15, 5), case(6, 3)]
    first = [ex.call(fn.name, *a) for a in first_args]

    def format_(*outs):
        for out, (q, p) in zip(outs, first_args):
            logits = _logits(out, len(q), len(p))
            if not logits.is_floating_point():
                raise Fail("the logits should be float")
            if (logits > 1e-6).any():
                raise Fail("the logits should be minus distances, never positive: nearer prototypes get higher logits")

    why = ("the logits differ from minus the squared Euclidean distances (squared, not the distance itself; summed "
           "over the dimensions, not averaged)")
    fn.check("returns (n_queries, n_way) logits that are never positive", 1, first, format_, hidden=False,
             needs=match(first_args, why))
    fn.check("the logits are minus the squared Euclidean distances", 1, first, match(first_args, why), hidden=False)
    args = [case(1, 5), case(4, 50), case(3, 1)]
    fn.check("a single query, many ways and a single way", 1, [ex.call(fn.name, *a) for a in args],
             match(args, "the logits differ from minus the squared Euclidean distances"))
    args = [case(10, 5, scale=100.0), case(8, 4, scale=0.01), case(6, 3)]
    weights = [torch.randn(len(q), len(p), generator=g) for q, p in args]

    def differentiable(*outs):
        for out, a, w in zip(outs, args, weights):
            (logits,), grads, after = adapted(out, a, ("logits",))
            expect_shape(logits, (len(a[0]), len(a[1])), "the logits", "(n_queries, n_way)")
            close(logits, reference_distance_logits(*a), "for very large or very small embeddings the logits differ "
                  "from minus the squared Euclidean distances: do not normalise the embeddings")
            gradients_match(grads, reference_gradients(reference_distance_logits, a, (w,)),
                            "the gradient that reaches the queries and prototypes differs from that of minus the "
                            "squared distances")
            untouched(after, a, "distance_logits")

    fn.check("embeddings of unequal scales (Euclidean, not cosine), differentiable, inputs left as they were", 1,
             [ex.call(fn.name, 2, *a, w, adapter=ADAPTER) for a, w in zip(args, weights)], differentiable)

    q, p = case(12, 5)
    perm = torch.randperm(len(q), generator=g)
    outlier = 30 * torch.randn(1, DIM, generator=g)
    alone = [ex.call(fn.name, q, p), ex.call(fn.name, q[perm], p), ex.call(fn.name, q[:1], p),
             ex.call(fn.name, torch.cat([q, outlier]), p)]

    def independent(whole, permuted, one, more):
        whole = _logits(whole, len(q), len(p))
        why = "a query's logits depend on the other queries: score each query on its own"
        close(_logits(permuted, len(q), len(p)), whole[perm], why)
        close(_logits(one, 1, len(p)), whole[:1], why)
        close(_logits(more, len(q) + 1, len(p))[:-1], whole, why)

    fn.check("each query scored on its own (order and number of queries do not matter)", 1, alone, independent,
             needs=match([(q, p)], "the logits differ from minus the squared Euclidean distances"))


# ---- the episode loss ------------------------------------------------------------------------

def _loss_and_accuracy(out):
    loss, acc = unpack(out, ("loss", "accuracy"))
    for t, name in ((loss, "the loss"), (acc, "the accuracy")):
        if t.numel() != 1:
            raise Fail(f"{name} should be a single number (a 0-dim tensor or a float)")
    return loss.reshape(()), acc.reshape(())


def _loss_checks(ex: Exercise, g: torch.Generator) -> None:
    fn = ex.function("episode_loss", "episode_loss(support, support_y, query, query_y, n_way)",
                     references=("mlcourse.methods.protonet.ProtoNet",), flag_names=("ProtoNet",))

    def match(cases, what=("loss", "accuracy")):
        def judge(*outs):
            for out, args in zip(outs, cases):
                loss, acc = _loss_and_accuracy(out)
                ref_loss, ref_acc = reference_episode_loss(*args)
                if "loss" in what:
                    close(loss, ref_loss, "the loss differs from the mean cross-entropy of the distance logits "
                                           "(a mean over the queries, not a sum)")
                if "accuracy" in what:
                    close(acc, ref_acc, "the accuracy differs from the share of queries whose nearest "
                                         "prototype is their class (a number in [0, 1])")
        return judge

    first_args = [_embeddings(g, 5, 2, 4), _embeddings(g, 3, 3, 2)]
    first = [ex.call(fn.name, *a) for a in first_args]

    def format_(*outs):
        for out in outs:
            loss, acc = _loss_and_accuracy(out)
            if not (loss.is_floating_point() and float(loss) >= 0):
                raise Fail("the loss should be a float, at least 0 (a cross-entropy)")
            if not 0 <= float(acc) <= 1:
                raise Fail("the accuracy should be a share in [0, 1], not a percentage or a count")

    fn.check("returns (loss, accuracy): two numbers", 1, first, format_, hidden=False, needs=match(first_args))
    fn.check("the loss is the mean cross-entropy of the distance logits", 1, first, match(first_args, ("loss",)),
             hidden=False)
    args = [_embeddings(g, 5, 1, 3, shuffled=True), _embeddings(g, 20, 1, 2, shuffled=True),
            _embeddings(g, 5, 5, 1, scale=3.0, shuffled=True)]
    weights = (torch.tensor(1.0), torch.tensor(0.0))  # the scalar whose gradient comes back: the loss

    def with_gradient(*outs):
        for out, a in zip(outs, args):
            items, grads, after = adapted(out, a, ("loss", "accuracy"))
            match([a])(items)
            gradients_match(grads, reference_gradients(reference_episode_loss, a, weights),
                            "the loss's gradient with respect to the support and query embeddings differs from "
                            "that of the mean cross-entropy of the distance logits")
            untouched(after, a, "episode_loss")

    fn.check("loss and accuracy on 1-shot, many-way and 5-shot episodes; the loss keeps its gradient, inputs left as "
             "they were", 1, [ex.call(fn.name, 5, *a, *weights, adapter=ADAPTER) for a in args], with_gradient)

    s, sy, q, qy, n = _embeddings(g, 5, 3, 3)
    sp, qp = torch.randperm(len(sy), generator=g), torch.randperm(len(qy), generator=g)
    orders = [ex.call(fn.name, s, sy, q, qy, n), ex.call(fn.name, s[sp], sy[sp], q[qp], qy[qp], n)]
    reference = reference_episode_loss(s, sy, q, qy, n)

    def any_order(whole, shuffled):
        loss, acc = _loss_and_accuracy(whole)
        loss2, acc2 = _loss_and_accuracy(shuffled)
        close(loss2, loss, "shuffling the support set or the queries (with their labels) changed the loss")
        close(acc2, acc, "shuffling the support set or the queries (with their labels) changed the accuracy")
        close(loss2, reference[0], "with the support set and the queries in any order, the loss differs "
                                    "from the mean cross-entropy of the distance logits")
        close(acc2, reference[1], "with the support set and the queries in any order, the accuracy differs from the "
                                  "share of queries whose nearest prototype is their class")

    fn.check("support set and queries in any order", 1, orders, any_order)


def build(seed: int) -> Exercise:
    """Chapter 4's graded functions, the grader's calls (inputs drawn from `seed`) and the checks."""
    # the solution trains a small network on Omniglot: about 15 s in all with the kernel's one thread on a 2-core
    # CPU; the limits leave room for a slow or busy machine
    return assemble(EXERCISE, seed, [_prototype_checks, _distance_checks, _loss_checks], uses_omniglot=True,
                    limits={"timeout": 300, "cell_timeout": 180, "call_timeout": 10})
