"""Checks of chapter 2's exercises: the Siamese verification loss and N-way prediction from pair logits.

The grader draws logits and labels from a seed, runs the student's functions on them in the
student's kernel, and judges the returned tensors here, in its own process, against mlcourse's
reference implementation (what `SiameseNet.loss` and `SiameseNet.predict` compute: binary
cross-entropy with logits, and `min_per_class`) and against properties that any correct solution has.

Hidden value checks of `n_way_predict` use support sets in shuffled order (never class by class), so
that a function that assumes the sampler's sorted order fails them as any wrong value does. One
hidden check of each function goes through the kernel-side adapter `outputs_gradients_inputs`: for
the loss, the network is trained through, so the gradient of the loss taken through the student's
graph comes back and is compared with the reference's (a loss returned with `.item()` has none);
for both, the inputs after the call are compared with the inputs before (no in-place clamp_).
"""

import torch
import torch.nn.functional as F

from mlcourse.grading.judges import (ADAPTER, adapted, close, expect_shape, gradients_match, reference_gradients,
                                     single, untouched)
from mlcourse.grading.spec import Exercise, Fail, assemble
from mlcourse.methods.nearest import min_per_class

EXERCISE = "02_siamese"


def reference_verification_loss(logits, same):
    """Mean binary cross-entropy of same-class log-odds, as in SiameseNet.loss."""
    return F.binary_cross_entropy_with_logits(logits, same)


def reference_n_way_predict(pair_logits, support_y, n_way):
    """For each query and class, the largest pair logit over the class's support images, as in SiameseNet.predict."""
    return -min_per_class(-pair_logits, support_y, n_way)


REFERENCES = {"verification_loss": reference_verification_loss, "n_way_predict": reference_n_way_predict}


# ---- the verification loss -------------------------------------------------------------------

def _number(out, what="the loss"):
    t = single(out, "loss")
    if t.numel() != 1:
        raise Fail(f"{what} should be a single number (a 0-dim tensor or a float): the mean over the pairs")
    return t.reshape(())


def _loss_checks(ex: Exercise, g: torch.Generator) -> None:
    fn = ex.function("verification_loss", "verification_loss(logits, same)",
                     references=("mlcourse.methods.siamese.SiameseNet",),
                     flag_names=("SiameseNet", "binary_cross_entropy_with_logits", "BCEWithLogitsLoss"))

    def case(n, scale=2.0):
        return scale * torch.randn(n, generator=g), (torch.rand(n, generator=g) < 0.5).float()

    def match(cases, why):
        def judge(*outs):
            for out, args in zip(outs, cases):
                close(_number(out), reference_verification_loss(*args), why)
        return judge

    worked = [(torch.tensor([0.0, 2.0, -1.0, 1.0]), torch.tensor([1.0, 1.0, 0.0, 0.0]))]
    keys = [ex.call(fn.name, *a) for a in worked]

    def format_(out):
        loss = _number(out)
        if not loss.is_floating_point() or float(loss) < 0:
            raise Fail("the loss should be a float, at least 0 (a cross-entropy)")

    worked_why = "the loss differs from the mean binary cross-entropy of the pairs"
    fn.check("returns one number, at least 0", 1, keys, format_, hidden=False, needs=match(worked, worked_why))
    fn.check("a worked case: the mean binary cross-entropy of four pairs", 1, keys, match(worked, worked_why),
             hidden=False)
    batches = [case(32), case(7), case(1), case(100, scale=0.1), case(40, scale=8.0)]
    one = (torch.tensor(1.0),)  # the scalar whose gradient comes back: the loss itself
    why = ("the loss differs from the mean binary cross-entropy of the pairs (a mean, not a sum; `same` is the "
           "target, the logits are log-odds)")

    def with_gradient(*outs):
        for out, a in zip(outs, batches):
            (loss,), grads, after = adapted(out, a, ("loss",))
            match([a], why)([loss])
            gradients_match(grads[:1], reference_gradients(reference_verification_loss, a, one)[:1],
                            "the loss's gradient with respect to the logits differs from that of the mean binary "
                            "cross-entropy")
            untouched(after, a, "verification_loss")

    fn.check("random batches, a single pair, and logits near zero; the loss keeps its gradient, inputs left as they "
             "were", 1, [ex.call(fn.name, 2, *a, *one, adapter=ADAPTER) for a in batches], with_gradient)
    cases = [case(20, scale=200.0), (torch.tensor([300.0, -300.0, 80.0, -80.0]), torch.tensor([0.0, 1.0, 1.0, 0.0]))]
    fn.check("confident logits: finite and right (numerically stable)", 1, [ex.call(fn.name, *a) for a in cases],
             match(cases, "for logits far from zero the loss is wrong or not finite: log(sigmoid(x)) underflows; "
                          "write it with softplus or logsigmoid"))


# ---- N-way prediction ------------------------------------------------------------------------

def _scores(out, n_queries, n_way):
    s = single(out, "class scores")
    expect_shape(s, (n_queries, n_way), "the class scores", "(n_queries, n_way)")
    return s


def _predict_checks(ex: Exercise, g: torch.Generator) -> None:
    fn = ex.function("n_way_predict", "n_way_predict(pair_logits, support_y, n_way)",
                     references=("mlcourse.methods.nearest.min_per_class",), flag_names=("min_per_class",))

    def case(n_queries, n_way, k_shot, offset=0.0, shuffled=False):
        support_y = torch.arange(n_way).repeat_interleave(k_shot)  # (n_way * k_shot,)
        if shuffled and n_way > 1:
            perm = torch.randperm(len(support_y), generator=g)
            while torch.equal(support_y[perm], support_y):  # another order than class by class
                perm = torch.randperm(len(support_y), generator=g)
            support_y = support_y[perm]
        return 3 * torch.randn(n_queries, len(support_y), generator=g) + offset, support_y, n_way

    def match(cases, why):
        def judge(*outs):
            for out, (logits, sy, n) in zip(outs, cases):
                close(_scores(out, len(logits), n), reference_n_way_predict(logits, sy, n), why)
        return judge

    why = "a class's score differs from the largest pair logit over that class's support images"
    worked = [(torch.tensor([[2.0, -1.0, 0.5, 3.0], [-2.0, -3.0, -0.5, -1.0]]), torch.tensor([0, 0, 1, 1]), 2)]
    keys = [ex.call(fn.name, *a) for a in worked]

    def format_(out):
        if not _scores(out, 2, 2).is_floating_point():
            raise Fail("the class scores should be float logits, one per class, not labels")

    fn.check("returns (n_queries, n_way) float class scores", 1, keys, format_, hidden=False,
             needs=match(worked, why))
    fn.check("a worked case: each class scores its best-matching support image", 1, keys, match(worked, why),
             hidden=False)
    episodes = [case(10, 5, 1, shuffled=True), case(6, 5, 5, offset=-20.0, shuffled=True),
                case(4, 40, 2, shuffled=True), case(3, 1, 3)]

    def any_episode(*outs):
        for out, a in zip(outs, episodes):
            (scores,), _, after = adapted(out, a, ("class scores",), weighted=False)
            close(_scores([scores], len(a[0]), a[2]), reference_n_way_predict(*a),
                  why + " (the maximum, not the mean or the sum)")
            untouched(after, a, "n_way_predict")

    fn.check("1-shot, k-shot with negative logits, many ways, a single way; inputs left as they were", 1,
             [ex.call(fn.name, 3, *a, adapter=ADAPTER) for a in episodes], any_episode)
    cases = [case(8, 5, 3, shuffled=True), case(5, 10, 2, shuffled=True)]
    fn.check("support set in any order (classes come from support_y)", 1, [ex.call(fn.name, *a) for a in cases],
             match(cases, why + ": with the support set in another order than class by class, find each "
                                "class's images through support_y"))

    logits, sy, n = case(12, 5, 2, shuffled=True)
    perm = torch.randperm(len(logits), generator=g)
    keys = [ex.call(fn.name, logits, sy, n), ex.call(fn.name, logits[perm], sy, n),
            ex.call(fn.name, logits[:1], sy, n)]

    def independent(whole, permuted, one):
        whole = _scores(whole, len(logits), n)
        why = "a query's class scores depend on the other queries: score each query on its own"
        close(_scores(permuted, len(logits), n), whole[perm], why)
        close(_scores(one, 1, n), whole[:1], why)

    fn.check("each query scored on its own (order and number of queries do not matter)", 1, keys, independent,
             needs=match([(logits, sy, n)], why))


def build(seed: int) -> Exercise:
    """Chapter 2's graded functions, the grader's calls (inputs drawn from `seed`) and the checks."""
    # the solution trains a small network on Omniglot: about 15 s in all with the kernel's one thread on a 2-core
    # CPU; the limits leave room for a slow or busy machine
    return assemble(EXERCISE, seed, [_loss_checks, _predict_checks], uses_omniglot=True,
                    limits={"timeout": 300, "cell_timeout": 180, "call_timeout": 10})
