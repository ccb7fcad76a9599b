"""Checks of chapter 5's exercises: the input sequences of black-box adaptation, causal attention, the query loss.

The grader draws embeddings, labels and attention inputs from a seed, runs the student's functions on
them in the student's kernel, and judges the returned tensors here, in its own process, against
mlcourse's reference (`mlcourse.methods.blackbox`) and against properties that any correct solution has.

Calls of tensor functions go through the kernel-side adapter `outputs_gradients_inputs`, which also
returns the inputs as they are after the call (an in-place change shows there) and, for `query_loss`,
the gradient of the loss with respect to the outputs it was given (a loss returned with `.item()` or
detached has none).

`build_sequences` shuffles the support set with a `torch.Generator`. Any way of drawing the order from
the generator is right (`torch.randperm(S, generator=g)`, `torch.rand(S, generator=g).argsort()`, ...),
so its output is never compared with the reference's order: the order is read back from the returned
sequences, and the checks ask that the order is one permutation of (embedding, label) pairs shared by
every query, that it is the same for the same generator state whatever torch's global random state,
and that other seeds give other orders.
"""

import math

import torch
import torch.nn.functional as F

from mlcourse.grading.judges import close, expect_shape, unpack, untouched
from mlcourse.grading.spec import Exercise, Fail, Seeded, assemble
from mlcourse.methods.blackbox import build_sequences, causal_attention, causal_mask, query_loss

EXERCISE = "05_black_box"
DIM = 12  # embedding size of the grader's sequences
ADAPTER = "outputs_gradients_inputs"


def reference_build_sequences(support_z, support_y, query_z, n_way, generator):
    """mlcourse's sequences (its own order; the checks never compare orders)."""
    return build_sequences(support_z, support_y, query_z, n_way, generator)


def reference_causal_mask(length):
    return causal_mask(length)


def reference_causal_attention(q, k, v):
    return causal_attention(q, k, v)


def reference_query_loss(outputs, query_y):
    return query_loss(outputs, query_y)


REFERENCES = {"build_sequences": reference_build_sequences, "causal_mask": reference_causal_mask,
              "causal_attention": reference_causal_attention, "query_loss": reference_query_loss}


def _one(out, n_inputs, what) -> tuple[torch.Tensor, list]:
    """The single tensor returned through the adapter, and the inputs after the call."""
    items, after = out[:len(out) - n_inputs], out[len(out) - n_inputs:]
    return unpack(items, (what,))[0], after


# ---- build_sequences -------------------------------------------------------------------------------

def _episode(g, n_way, k_shot, n_queries, shuffled=False):
    """support_z (S, d), support_y (S,), query_z (Q, d), n_way; every embedding distinct."""
    support_z = torch.randn(n_way * k_shot, DIM, generator=g)
    support_y = torch.arange(n_way).repeat_interleave(k_shot)  # (S,)
    if shuffled:
        support_y = support_y[torch.randperm(len(support_y), generator=g)]
    return support_z, support_y, torch.randn(n_queries, DIM, generator=g), n_way


def support_order(seq: torch.Tensor, support_z: torch.Tensor) -> torch.Tensor | None:
    """(Q, S): which support example sits at each support position of each sequence (None if any position holds
    no support embedding)."""
    n_support = len(support_z)
    emb = seq[:, :n_support, :support_z.shape[1]].double()  # (Q, S, d)
    distances = (emb[:, :, None, :] - support_z.double()[None, None]).abs().amax(-1)  # (Q, S, S)
    best, order = distances.min(-1)
    return order if bool((best <= 1e-5 * max(1.0, float(support_z.abs().max()))).all()) else None


def _shape_of_sequences(seq, args) -> None:
    support_z, support_y, query_z, n_way = args[:4]
    expect_shape(seq, (len(query_z), len(support_y) + 1, support_z.shape[1] + n_way), "the sequences",
                 "(Q, S + 1, d + n_way): one sequence per query, the S support examples then the query, each "
                 "position an embedding followed by n_way label channels")
    if not seq.is_floating_point():
        raise Fail("the sequences should be float tensors, like the embeddings")


def _query_verdict(seq, args) -> None:
    support_z, _, query_z, _ = args[:4]
    d = support_z.shape[1]
    if not torch.allclose(seq[:, -1, :d].double(), query_z.double(), atol=1e-6):
        raise Fail("the last position of each sequence should hold its query's embedding (query i in sequence i): "
                   "the support examples first, the query last")
    if bool((seq[:, -1, d:] != 0).any()):
        raise Fail("the query's label channels are not zero: the query's label is what the learner must predict, "
                   "so any label given there (its own, or any other) leaks or misleads; give it a zero label vector")


def _pairing_verdict(seq, args) -> torch.Tensor:
    """The order of the support set in each sequence, once every support position is checked to hold one pair."""
    support_z, support_y, _, n_way = args[:4]
    d, n_support = support_z.shape[1], len(support_y)
    order = support_order(seq, support_z)
    if order is None or not all(torch.equal(o.sort().values, torch.arange(n_support)) for o in order):
        raise Fail("the first S positions of each sequence should hold every support embedding exactly once, "
                   "unchanged")
    labels = seq[:, :n_support, d:].double()  # (Q, S, n_way)
    expected = F.one_hot(support_y, n_way).double()[order]  # (Q, S, n_way): the labels of the embeddings there
    if not torch.equal(labels, expected):
        one_hot = bool(((labels == 0) | (labels == 1)).all()) and bool((labels.sum(-1) == 1).all())
        if one_hot and all(torch.equal(lab.argmax(-1).sort().values, support_y.sort().values) for lab in labels):
            raise Fail("a support embedding sits next to another example's label: shuffle the (embedding, label) "
                       "pairs with one order for both, so that every image keeps its own label")
        raise Fail("the label channels of a support position should be the one-hot vector of that example's label")
    return order


def _prefix_verdict(seq, args) -> None:
    n_support = len(args[1])
    if not bool((seq[:, :n_support] == seq[:1, :n_support]).all()):
        raise Fail("the queries' sequences start with the support set in different orders: shuffle once per "
                   "episode and give every query the same shuffled support set")


def sequences_verdict(seq, args) -> torch.Tensor:
    """Fail unless `seq` is a right set of sequences for `args` in some order; that order, (S,)."""
    _shape_of_sequences(seq, args)
    _query_verdict(seq, args)
    order = _pairing_verdict(seq, args)
    _prefix_verdict(seq, args)
    return order[0]


def _sequences_checks(ex: Exercise, g: torch.Generator) -> None:
    fn = ex.function("build_sequences", "build_sequences(support_z, support_y, query_z, n_way, generator)",
                     references=("mlcourse.methods.blackbox.build_sequences",))

    def seed() -> Seeded:
        return Seeded(int(torch.randint(0, 2**31 - 1, (), generator=g)))

    def calls(cases, global_seed=0):
        return [ex.call(fn.name, 5, *c, global_seed=global_seed, adapter=ADAPTER) for c in cases]

    def sequences(out, args):
        return _one(out, 3, "sequences")

    def judge_each(cases, *verdicts):
        def judge(*outs):
            for out, args in zip(outs, cases):
                seq, _ = sequences(out, args)
                for verdict in verdicts:
                    verdict(seq, args)
        return judge

    first = [(*_episode(g, 5, 1, 10), seed()), (*_episode(g, 3, 2, 4, shuffled=True), seed())]
    fn.check("one sequence per query: the support pairs in some order, then the query with a zero label", 2,
             calls(first), judge_each(first, sequences_verdict), hidden=False)

    leak = [(*_episode(g, 20, 1, 3), seed()), (*_episode(g, 5, 2, 1), seed()), (*_episode(g, 2, 3, 6), seed())]
    fn.check("no query label leaks: the query's label channels are zero", 1, calls(leak),
             judge_each(leak, _shape_of_sequences, _query_verdict))

    pairs = [(*_episode(g, 5, 3, 4, shuffled=True), seed()), (*_episode(g, 10, 2, 3, shuffled=True), seed())]
    fn.check("each support embedding keeps its own label through the shuffle", 1, calls(pairs),
             judge_each(pairs, _shape_of_sequences, _pairing_verdict))

    prefix = [(*_episode(g, 5, 2, 15), seed()), (*_episode(g, 4, 3, 8, shuffled=True), seed())]
    fn.check("one shuffle per episode: every query's sequence has the same support order", 1, calls(prefix),
             judge_each(prefix, _shape_of_sequences, _prefix_verdict), needs=judge_each(prefix, sequences_verdict))

    episode, seeds = _episode(g, 5, 2, 3, shuffled=True), [seed() for _ in range(3)]
    drawn = [(*episode, seeds[0]), (*episode, seeds[0]), (*episode, seeds[1]), (*episode, seeds[2])]
    keys = calls(drawn[:1]) + calls(drawn[1:2], global_seed=1) + calls(drawn[2:])

    def from_generator(*outs):
        orders = [sequences_verdict(sequences(out, args)[0], args) for out, args in zip(outs, drawn)]
        if all(torch.equal(o, torch.arange(len(o))) for o in orders):
            raise Fail("the support set is not shuffled: draw a random order of the support examples from the "
                       "generator, so that the learner cannot rely on their position")
        if not torch.equal(orders[0], orders[1]):
            raise Fail("the same generator state gave another order when torch's global random state changed: "
                       "draw the order from the generator you are given (generator=...), not from the global one")
        if all(torch.equal(o, orders[0]) for o in orders[2:]):
            raise Fail("generators seeded differently give the same order: draw the order from the generator "
                       "you are given")

    fn.check("the order is drawn from the generator: the same seed, the same order; other seeds, other orders", 1,
             keys, from_generator)

    kept = [(*_episode(g, 5, 1, 5), seed()), (*_episode(g, 3, 3, 2, shuffled=True), seed())]

    def inputs_kept(*outs):
        for out, args in zip(outs, kept):
            seq, after = sequences(out, args)
            sequences_verdict(seq, args)
            untouched(after, args[:3], "build_sequences")

    fn.check("support_z, support_y and query_z are left as they were", 1, calls(kept), inputs_kept)


# ---- causal_mask -----------------------------------------------------------------------------------

def _mask(out, length) -> torch.Tensor:
    mask = unpack(out, ("mask",))[0]
    expect_shape(mask, (length, length), "the mask", "(length, length)")
    if mask.dtype != torch.bool and not bool(((mask == 0) | (mask == 1)).all()):
        raise Fail("the mask should hold booleans: True where position i may read position j")
    return mask != 0


def _mask_verdict(mask, length, part) -> None:
    allowed = torch.ones(length, length, dtype=torch.bool).tril()
    if length > 1 and torch.equal(mask, ~allowed):
        raise Fail("the mask is inverted: True should mean that position i may read position j, for j <= i")
    if part in ("all", "future") and bool((mask & ~allowed).any()):
        raise Fail("the mask lets a position read a later one (True above the diagonal): position i may read "
                   "position j only for j <= i")
    if part in ("all", "past") and not bool(mask[allowed].all()):
        if not bool(mask.diagonal().all()):
            raise Fail("the diagonal is False: a position reads itself too (j <= i, not j < i), or the first "
                       "position would read nothing")
        raise Fail("the mask hides an earlier position: position i may read every position j <= i")


def _mask_checks(ex: Exercise, g: torch.Generator) -> None:
    fn = ex.function("causal_mask", "causal_mask(length)", references=("mlcourse.methods.blackbox.causal_mask",))

    def judge(lengths, part, dtype=False):
        def verdict(*outs):
            for out, length in zip(outs, lengths):
                mask = _mask(out, length)
                if dtype and out[0].dtype != torch.bool:
                    raise Fail("the mask should be a bool tensor (dtype torch.bool)")
                _mask_verdict(mask, length, part)
        return verdict

    first = [5, 1]
    fn.check("a (length, length) bool tensor, True where j <= i", 1, [ex.call(fn.name, n) for n in first],
             judge(first, "all", dtype=True), hidden=False)
    future = [2, 7, 16]
    fn.check("no position reads a later one", 1, [ex.call(fn.name, n) for n in future], judge(future, "future"))
    past = [1, 3, 9]
    fn.check("every position reads itself and every earlier one", 1, [ex.call(fn.name, n) for n in past],
             judge(past, "past"))


# ---- causal_attention ------------------------------------------------------------------------------

def _qkv(g, n, length, d_k, d_v, scale=1.0):
    """q, k (N, T, d_k) and v (N, T, d_v), standard normal (scaled)."""
    return (scale * torch.randn(n, length, d_k, generator=g), scale * torch.randn(n, length, d_k, generator=g),
            torch.randn(n, length, d_v, generator=g))


def high_scores(g, n, length, d_k, d_v, level=40.0):
    """q, k whose scaled scores all lie far above 0 (about `level`, spread by a few units): a score replaced by 0
    then gets no weight to speak of, so that a mask made by zeroing scores passes where only scaling or the softmax's
    dimension is judged."""
    u = torch.ones(d_k) / math.sqrt(d_k)
    a = math.sqrt(level) * d_k ** 0.25  # (a u) . (a u) / sqrt(d_k) = level
    q = a * u + 0.5 * torch.randn(n, length, d_k, generator=g)
    k = a * u + 0.5 * torch.randn(n, length, d_k, generator=g)
    return q, k, torch.randn(n, length, d_v, generator=g)


def unscaled_attention(q, k, v):
    return causal_attention(q * math.sqrt(k.shape[-1]), k, v)


def zero_masked_attention(q, k, v):
    """The usual mistake: scores multiplied by the mask, so the masked ones are 0 (weight exp(0)), not -inf."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(k.shape[-1])  # (N, T, T)
    return (scores * causal_mask(q.shape[-2])).softmax(-1) @ v


def column_softmax_attention(q, k, v):
    """The usual mistake: the softmax over the queries (dim -2) instead of the keys."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(k.shape[-1])
    return scores.masked_fill(~causal_mask(q.shape[-2]), float("-inf")).softmax(-2) @ v


def _attention(out, args) -> tuple[torch.Tensor, list]:
    q, _, v = args[1:4]
    result, after = _one(out, 3, "output")
    expect_shape(result, (q.shape[0], q.shape[1], v.shape[2]), "the output", "(N, T, d_v)")
    if not torch.isfinite(result).all():
        raise Fail("the output holds nan or inf: a position must read at least itself (the diagonal), and masked "
                   "scores are -inf before the softmax, not after it")
    return result, after


def _attention_mistake(result, args) -> str | None:
    """What a wrong output matches among the usual mistakes, as the message to give; None if none."""
    q, k, v = (t.double() for t in args[1:4])
    mistakes = ((unscaled_attention, "the scores are not scaled: divide q k^T by sqrt(d_k), the square root of the "
                                     "key size, or the softmax saturates as d_k grows"),
                (lambda q_, k_, v_: unscaled_attention(q_ / math.sqrt(k_.shape[-1]), k_, v_),
                 "the scores are divided by d_k: divide by its square root, sqrt(d_k)"),
                (column_softmax_attention, "the softmax normalises over the wrong dimension: each position's weights "
                                           "over the keys (the last dimension of the scores) sum to one"),
                (zero_masked_attention, "masked scores set to zero still get a weight from the softmax: fill them "
                                        "with -inf (masked_fill) so that they get none"))
    for mistake, message in mistakes:
        if torch.allclose(result.double(), mistake(q, k, v), rtol=1e-4, atol=1e-5):
            return message
    return None


def _attention_verdict(result, args, why) -> None:
    q, k, v = args[1:4]
    expected = causal_attention(q.double(), k.double(), v.double())
    if not torch.allclose(result.double(), expected, rtol=1e-4, atol=1e-5):
        raise Fail(_attention_mistake(result, args) or why)


def _attention_checks(ex: Exercise, g: torch.Generator) -> None:
    fn = ex.function("causal_attention", "causal_attention(q, k, v)",
                     references=("mlcourse.methods.blackbox.causal_attention",
                                 "mlcourse.methods.blackbox.AttentionBlock"),
                     flag_names=("AttentionBlock",))

    def calls(cases):
        return [ex.call(fn.name, 3, *c, adapter=ADAPTER) for c in cases]

    def matches(cases, why):
        def judge(*outs):
            for out, case in zip(outs, cases):
                _attention_verdict(_attention(out, (3, *case))[0], (3, *case), why)
        return judge

    first = [_qkv(g, 2, 6, 4, 3), _qkv(g, 3, 4, 8, 8)]
    fn.check("(N, T, d_v): softmax(q k^T / sqrt(d_k)) v, later positions masked", 1, calls(first),
             matches(first, "the output differs from softmax(q k^T / sqrt(d_k)) v with every score of a later "
                            "position masked out"), hidden=False)

    scaled = [high_scores(g, 2, 5, 16, 4), high_scores(g, 1, 7, 64, 5)]
    fn.check("scores scaled by 1 / sqrt(d_k)", 1, calls(scaled),
             matches(scaled, "with larger keys the output differs from softmax(q k^T / sqrt(d_k)) v"))

    over_keys = [high_scores(g, 2, 6, 1, 3), high_scores(g, 3, 4, 1, 2)]
    fn.check("the softmax is over the keys: each position's weights sum to 1", 1, calls(over_keys),
             matches(over_keys, "the output differs from softmax(q k^T / sqrt(d_k)) v, the softmax taken over the "
                                "keys (the last dimension of the scores)"))

    cut = 3
    causal = []
    for n, length, d_v in ((2, 8, 4), (3, 6, 2)):
        q, k, v = _qkv(g, n, length, 1, d_v, scale=1.5)
        later = _qkv(g, n, length - cut - 1, 1, d_v, scale=1.5)  # new q, k, v for the positions after `cut`
        causal += [(q, k, v), tuple(torch.cat([t[:, :cut + 1], t2], dim=1) for t, t2 in zip((q, k, v), later))]

    def reads_the_past(*outs):
        results = [_attention(out, (3, *c))[0] for out, c in zip(outs, causal)]
        for i in range(0, len(causal), 2):
            if not torch.allclose(results[i][:, :cut + 1], results[i + 1][:, :cut + 1], rtol=1e-4, atol=1e-5):
                raise Fail(_attention_mistake(results[i], (3, *causal[i])) or
                           "a position's output changes with later positions: mask every score of a later key "
                           "(j > i) before the softmax")
        for result, case in zip(results, causal):
            _attention_verdict(result, (3, *case), "the output differs from softmax(q k^T / sqrt(d_k)) v with "
                                                   "every score of a later position masked out")

    fn.check("each position reads only itself and earlier positions", 1, calls(causal), reads_the_past)

    sizes = [_qkv(g, 4, 1, 8, 3), _qkv(g, 1, 40, 16, 8), _qkv(g, 2, 9, 5, 12, scale=3.0)]

    def any_size(*outs):
        for out, case in zip(outs, sizes):
            result, after = _attention(out, (3, *case))
            _attention_verdict(result, (3, *case), "for one position, a long sequence or d_v other than d_k, the "
                                                   "output differs from softmax(q k^T / sqrt(d_k)) v, masked")
            untouched(after, case, "causal_attention")

    fn.check("any sizes (one position, long sequences, d_v other than d_k); q, k, v left as they were", 1,
             calls(sizes), any_size)


# ---- query_loss ------------------------------------------------------------------------------------

def _outputs(g, n_queries, length, n_way, sharp=3.0):
    """(Q, S + 1, n_way) learner outputs and (Q,) labels; the query position's logits lean towards the label
    (accuracy well above chance), the support positions' do not."""
    query_y = torch.randint(0, n_way, (n_queries,), generator=g)
    outputs = 2 * torch.randn(n_queries, length, n_way, generator=g)
    outputs[:, -1] += sharp * F.one_hot(query_y, n_way) * (torch.rand(n_queries, 1, generator=g) < 0.7)
    return outputs, query_y


def _loss_and_accuracy(out) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list]:
    """The loss, the accuracy, d loss / d outputs and the inputs after the call."""
    items, grads, after = out[:len(out) - 3], out[len(out) - 3:len(out) - 2], out[len(out) - 2:]
    loss, acc = unpack(items, ("loss", "accuracy"))
    for t, name in ((loss, "the loss"), (acc, "the accuracy")):
        if t.numel() != 1:
            raise Fail(f"{name} should be a single number (a 0-dim tensor)")
    if not loss.is_floating_point():
        raise Fail("the loss should be a float: the mean cross-entropy of the queries")
    return loss.reshape(()), acc.reshape(()).double(), grads[0], after


def reference_loss_outputs(outputs, query_y):
    """The reference loss and accuracy, and d loss / d outputs."""
    leaf = outputs.detach().double().requires_grad_()
    loss, acc = query_loss(leaf, query_y)
    return loss.detach(), acc.double(), torch.autograd.grad(loss, leaf)[0]


def _loss_verdict(loss, outputs, query_y, why) -> None:
    reference = reference_loss_outputs(outputs, query_y)[0]
    if not torch.allclose(loss.double(), reference, rtol=1e-4, atol=1e-5):
        o, y, length = outputs.double(), query_y, outputs.shape[1]
        mistakes = ((F.cross_entropy(o.reshape(-1, o.shape[-1]), y.repeat_interleave(length)),
                     "the loss is averaged over the support positions too: read it at the query position (the "
                     "last) only; support positions hold their own labels, and a loss there teaches copying"),
                    (F.cross_entropy(o.mean(1), y), "the loss is taken on the logits averaged over the positions: "
                                                     "read the logits at the query position (the last) only"),
                    (F.cross_entropy(o[:, 0], y), "the loss is read at the first position: the query is the last "
                                                   "position of each sequence"),
                    (F.cross_entropy(o[:, -1], y, reduction="sum"), "the loss sums over the queries: take the mean"))
        for value, message in mistakes:
            if torch.allclose(loss.double(), value, rtol=1e-4, atol=1e-5):
                raise Fail(message)
        raise Fail(why)


def _accuracy_verdict(acc, outputs, query_y, why) -> None:
    reference = reference_loss_outputs(outputs, query_y)[1]
    if not torch.allclose(acc, reference, atol=1e-6):
        every = (outputs.argmax(-1) == query_y[:, None]).double().mean()
        if torch.allclose(acc, every, atol=1e-6):
            raise Fail("the accuracy counts every position: count each query once, at its last position")
        if torch.allclose(acc, 100 * reference, atol=1e-4) or torch.allclose(acc, reference * len(query_y)):
            raise Fail("the accuracy should be a share between zero and one, not a percentage or a count")
        raise Fail(why)


def _loss_checks(ex: Exercise, g: torch.Generator) -> None:
    fn = ex.function("query_loss", "query_loss(outputs, query_y)",
                     references=("mlcourse.methods.blackbox.query_loss", "mlcourse.methods.blackbox.BlackBox"),
                     flag_names=("BlackBox",))
    weights = (torch.tensor(1.0), torch.tensor(0.0))  # the scalar whose gradient comes back: the loss

    def calls(cases):
        return [ex.call(fn.name, 2, *c, *weights, adapter=ADAPTER) for c in cases]

    first = [_outputs(g, 10, 6, 5), _outputs(g, 4, 7, 3)]

    def both(*outs):
        for out, (outputs, query_y) in zip(outs, first):
            loss, acc, _, _ = _loss_and_accuracy(out)
            _loss_verdict(loss, outputs, query_y, "the loss differs from the mean cross-entropy of the queries' "
                                                  "logits at the last position")
            _accuracy_verdict(acc, outputs, query_y, "the accuracy differs from the share of queries whose "
                                                     "largest logit at the last position is their label")

    fn.check("returns (loss, accuracy) of the queries, read at the last position", 1, calls(first), both,
             hidden=False)

    at_query = [_outputs(g, 12, 11, 5), _outputs(g, 6, 4, 3, sharp=5.0)]

    def loss_at_query(*outs):
        for out, (outputs, query_y) in zip(outs, at_query):
            _loss_verdict(_loss_and_accuracy(out)[0], outputs, query_y, "the loss differs from the mean "
                          "cross-entropy of the logits at each sequence's last position")

    fn.check("the loss is read at the query position only", 1, calls(at_query), loss_at_query)

    counted = [_outputs(g, 20, 6, 5), _outputs(g, 9, 16, 4, sharp=6.0)]

    def accuracy_at_query(*outs):
        for out, (outputs, query_y) in zip(outs, counted):
            _accuracy_verdict(_loss_and_accuracy(out)[1], outputs, query_y, "the accuracy differs from the share "
                              "of queries whose largest logit at the last position is their label")

    fn.check("the accuracy counts each query once, at its last position", 1, calls(counted), accuracy_at_query)

    graded = [_outputs(g, 8, 6, 5), _outputs(g, 3, 9, 4)]

    def gradient(*outs):
        for out, (outputs, query_y) in zip(outs, graded):
            loss, _, grad, _ = _loss_and_accuracy(out)
            _loss_verdict(loss, outputs, query_y, "the loss differs from the mean cross-entropy of the queries' "
                                                  "logits at the last position")
            expected = reference_loss_outputs(outputs, query_y)[2]
            if not bool(grad.abs().max() > 0):
                raise Fail("no gradient reaches the outputs from the loss: return a tensor that keeps its graph "
                           "(no .item(), .detach(), NumPy or torch.no_grad())")
            if bool(grad[:, :-1].abs().max() > 0):
                raise Fail("the loss's gradient reaches the support positions: only the query position's logits "
                           "enter the loss")
            close(grad, expected, "the loss's gradient differs from that of the mean cross-entropy at the query "
                                  "positions")

    fn.check("the loss keeps its gradient, which reaches the query positions only", 1, calls(graded), gradient)

    sizes = [_outputs(g, 1, 6, 5), _outputs(g, 7, 21, 20, sharp=8.0), _outputs(g, 5, 2, 2)]

    def any_size(*outs):
        for out, (outputs, query_y) in zip(outs, sizes):
            loss, acc, _, after = _loss_and_accuracy(out)
            why = "for a single query, many ways or one support example, "
            _loss_verdict(loss, outputs, query_y, why + "the loss differs from the mean cross-entropy at the last "
                                                        "position")
            _accuracy_verdict(acc, outputs, query_y, why + "the accuracy differs from the share of queries right "
                                                           "at the last position")
            untouched(after, (outputs, query_y), "query_loss")

    fn.check("any number of queries, ways and positions; the inputs left as they were", 1, calls(sizes), any_size)


def build(seed: int) -> Exercise:
    """Chapter 5's graded functions, the grader's calls (inputs drawn from `seed`) and the checks."""
    # the solution trains a small black-box learner on Omniglot: about a minute with the kernel's one thread on a
    # 2-core CPU; the limits leave room for a slow or busy machine
    return assemble(EXERCISE, seed, [_sequences_checks, _mask_checks, _attention_checks, _loss_checks],
                    uses_omniglot=True, limits={"timeout": 480, "cell_timeout": 300, "call_timeout": 10})
