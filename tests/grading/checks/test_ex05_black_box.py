"""Chapter 5's checks: each common mistake fails the check meant for it, and unusual but right solutions get full
marks (what every set must do is in test_sets.py)."""

import math

import pytest
import torch
import torch.nn.functional as F

from mlcourse.grading import adapters
from mlcourse.grading.static import screen
from tests.grading.checks.notebooks import GradedSet

SET = GradedSet("05_black_box")
REFERENCES, failing = SET.references, SET.failing
SEEDS = [None, 1, 2024, 77777]

SEQUENCES = "one sequence per query: the support pairs in some order, then the query with a zero label"
LEAK = "no query label leaks: the query's label channels are zero"
PAIRS = "each support embedding keeps its own label through the shuffle"
PREFIX = "one shuffle per episode: every query's sequence has the same support order"
GENERATOR = "the order is drawn from the generator: the same seed, the same order; other seeds, other orders"
INPUTS_KEPT = "support_z, support_y and query_z are left as they were"
MASK = "a (length, length) bool tensor, True where j <= i"
NO_FUTURE = "no position reads a later one"
PAST = "every position reads itself and every earlier one"
ATTENTION = "(N, T, d_v): softmax(q k^T / sqrt(d_k)) v, later positions masked"
SCALED = "scores scaled by 1 / sqrt(d_k)"
OVER_KEYS = "the softmax is over the keys: each position's weights sum to 1"
CAUSAL = "each position reads only itself and earlier positions"
ATTENTION_SIZES = "any sizes (one position, long sequences, d_v other than d_k); q, k, v left as they were"
LOSS = "returns (loss, accuracy) of the queries, read at the last position"
LOSS_AT_QUERY = "the loss is read at the query position only"
ACCURACY = "the accuracy counts each query once, at its last position"
GRADIENT = "the loss keeps its gradient, which reaches the query positions only"
LOSS_SIZES = "any number of queries, ways and positions; the inputs left as they were"


def test_the_screen_flags_the_references():
    source = ("from mlcourse.methods.blackbox import build_sequences, causal_attention\n"
              "import mlcourse.methods.blackbox as b\nb.query_loss")
    flagged = screen([{"cell_type": "code", "source": source}], SET.exercise)
    assert {f.function for f in flagged} == {"build_sequences", "causal_attention", "query_loss"}


# ---- build_sequences -------------------------------------------------------------------------------

def sequences(support_z, support_y, query_z, n_way, order, query_label=None, label_order=None, per_query=None):
    """Sequences with the given support order, and the knobs that students get wrong."""
    labels = F.one_hot(support_y, n_way).to(support_z.dtype)
    z = support_z[order]
    labels = labels[order if label_order is None else label_order]
    support = torch.cat([z, labels], dim=1)  # (S, d + n_way)
    q_label = query_z.new_zeros(len(query_z), n_way) if query_label is None else query_label(len(query_z), n_way)
    query = torch.cat([query_z, q_label], dim=1)  # (Q, d + n_way)
    rows = [support if per_query is None else support[per_query()] for _ in range(len(query_z))]
    return torch.stack([torch.cat([s, q[None]]) for s, q in zip(rows, query)])  # (Q, S + 1, d + n_way)


def wrong_sequences(query_label=None, label_order=None, per_query=False):
    """build_sequences with one of the knobs of `sequences` turned; orders drawn from the generator."""
    def build_sequences(support_z, support_y, query_z, n_way, generator):
        n_support = len(support_y)
        order = torch.randperm(n_support, generator=generator)
        return sequences(support_z, support_y, query_z, n_way, order, query_label=query_label,
                         label_order=None if label_order is None else label_order(n_support, generator),
                         per_query=(lambda: torch.randperm(n_support, generator=generator)) if per_query else None)
    return build_sequences


def global_order(support_z, support_y, query_z, n_way, generator):
    return sequences(support_z, support_y, query_z, n_way, torch.randperm(len(support_y)))


def no_shuffle(support_z, support_y, query_z, n_way, generator):
    return sequences(support_z, support_y, query_z, n_way, torch.arange(len(support_y)))


def own_generator(support_z, support_y, query_z, n_way, generator):
    g = torch.Generator().manual_seed(0)
    return sequences(support_z, support_y, query_z, n_way, torch.randperm(len(support_y), generator=g))


def shuffled_in_place(support_z, support_y, query_z, n_way, generator):
    order = torch.randperm(len(support_y), generator=generator)
    support_z.copy_(support_z[order])
    support_y.copy_(support_y[order])
    return sequences(support_z, support_y, query_z, n_way, torch.arange(len(support_y)))


def query_first(support_z, support_y, query_z, n_way, generator):
    seq = REFERENCES["build_sequences"](support_z, support_y, query_z, n_way, generator)
    return seq.roll(1, dims=1)


# right, in other ways

def argsort_order(support_z, support_y, query_z, n_way, generator):
    return sequences(support_z, support_y, query_z, n_way, torch.rand(len(support_y), generator=generator).argsort())


def eye_and_loop(support_z, support_y, query_z, n_way, generator):
    order = torch.randperm(len(support_y), generator=generator).tolist()
    eye = torch.eye(n_way)
    out = []
    for q in query_z:
        rows = []
        for i in order:
            rows.append(torch.cat([support_z[i], eye[support_y[i]]]))
        rows.append(torch.cat([q, torch.zeros(n_way)]))
        out.append(torch.stack(rows))
    return torch.stack(out)


def multinomial_order(support_z, support_y, query_z, n_way, generator):
    order = torch.multinomial(torch.ones(len(support_y)), len(support_y), generator=generator)
    support = torch.cat([support_z, F.one_hot(support_y, n_way).float()], dim=1)[order]
    query = F.pad(query_z, (0, n_way))
    return torch.cat([support.unsqueeze(0).repeat(len(query_z), 1, 1), query.unsqueeze(1)], dim=1)


# ---- causal_mask -----------------------------------------------------------------------------------

def strict_mask(length):
    return torch.ones(length, length, dtype=torch.bool).tril(-1)


def one_ahead_mask(length):
    return torch.ones(length, length, dtype=torch.bool).tril(1)


def inverted_mask(length):
    return torch.ones(length, length, dtype=torch.bool).triu(1)


def float_mask(length):
    return torch.ones(length, length).tril()


def triu_mask(length):
    return ~torch.triu(torch.ones(length, length, dtype=torch.bool), diagonal=1)


def arange_mask(length):
    i = torch.arange(length)
    return i[:, None] >= i[None, :]


def loop_mask(length):
    return torch.tensor([[j <= i for j in range(length)] for i in range(length)], dtype=torch.bool).reshape(length,
                                                                                                           length)


# ---- causal_attention ------------------------------------------------------------------------------

def attention(q, k, v, scale=None, dim=-1, mask="fill", allowed=None):
    """Causal attention with the knobs that students get wrong."""
    length = q.shape[-2]
    scores = q @ k.transpose(-1, -2) / (math.sqrt(k.shape[-1]) if scale is None else scale)
    allowed = torch.ones(length, length, dtype=torch.bool).tril() if allowed is None else allowed(length)
    if mask == "fill":
        scores = scores.masked_fill(~allowed, float("-inf"))
    elif mask == "zero":
        scores = scores * allowed
    elif mask == "big":
        scores = scores.masked_fill(~allowed, -1e9)
    return scores.softmax(dim) @ v


def unscaled(q, k, v):
    return attention(q, k, v, scale=1.0)


def by_d_k(q, k, v):
    return attention(q, k, v, scale=k.shape[-1])


def over_queries(q, k, v):
    return attention(q, k, v, dim=-2)


def zero_masked(q, k, v):
    return attention(q, k, v, mask="zero")


def unmasked(q, k, v):
    return attention(q, k, v, mask="none")


def strict_attention(q, k, v):
    return attention(q, k, v, allowed=strict_mask)


def one_ahead_attention(q, k, v):
    return attention(q, k, v, allowed=one_ahead_mask)


def scaled_in_place(q, k, v):
    q /= math.sqrt(k.shape[-1])
    return attention(q, k, v, scale=1.0)


# right, in other ways

def sdpa(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def big_negative(q, k, v):
    return attention(q, k, v, mask="big")


def looped(q, k, v):
    out = torch.zeros(q.shape[0], q.shape[1], v.shape[2])
    for n in range(q.shape[0]):
        for i in range(q.shape[1]):
            scores = torch.stack([q[n, i] @ k[n, j] for j in range(i + 1)]) / k.shape[-1] ** 0.5
            weights = torch.exp(scores - scores.max())
            out[n, i] = (weights / weights.sum()) @ v[n, : i + 1]
    return out


def triu_attention(q, k, v):
    scores = torch.einsum("ntd,nsd->nts", q, k) / math.sqrt(q.shape[-1])
    future = torch.triu(torch.ones(q.shape[1], q.shape[1]), diagonal=1).bool()
    return torch.softmax(scores + torch.zeros_like(scores).masked_fill(future, -math.inf), dim=2) @ v


# ---- query_loss ------------------------------------------------------------------------------------

def every_position(outputs, query_y):
    logits = outputs.reshape(-1, outputs.shape[-1])
    loss = F.cross_entropy(logits, query_y.repeat_interleave(outputs.shape[1]))
    return loss, (outputs[:, -1].argmax(-1) == query_y).float().mean()


def mean_of_positions(outputs, query_y):
    return F.cross_entropy(outputs.mean(1), query_y), (outputs[:, -1].argmax(-1) == query_y).float().mean()


def first_position(outputs, query_y):
    return F.cross_entropy(outputs[:, 0], query_y), (outputs[:, 0].argmax(-1) == query_y).float().mean()


def summed_loss(outputs, query_y):
    loss, acc = REFERENCES["query_loss"](outputs, query_y)
    return loss * len(query_y), acc


def item_loss(outputs, query_y):
    loss, acc = REFERENCES["query_loss"](outputs, query_y)
    return loss.item(), acc


def detached_loss(outputs, query_y):
    loss, acc = REFERENCES["query_loss"](outputs.detach(), query_y)
    return loss, acc


def accuracy_everywhere(outputs, query_y):
    loss, _ = REFERENCES["query_loss"](outputs, query_y)
    return loss, (outputs.argmax(-1) == query_y[:, None]).float().mean()


def percent(outputs, query_y):
    loss, acc = REFERENCES["query_loss"](outputs, query_y)
    return loss, 100 * acc


def stabilised_in_place(outputs, query_y):
    outputs -= outputs.max(dim=-1, keepdim=True).values.detach()
    return REFERENCES["query_loss"](outputs, query_y)


# right, in other ways

def by_hand(outputs, query_y):
    logits = outputs[:, outputs.shape[1] - 1, :]
    log_p = logits - logits.logsumexp(dim=1, keepdim=True)
    loss = -log_p.gather(1, query_y[:, None]).mean()
    return loss, float((logits.argmax(1) == query_y).sum()) / len(query_y)


def looped_loss(outputs, query_y):
    losses = [F.nll_loss(F.log_softmax(o[-1], dim=0)[None], y[None]) for o, y in zip(outputs, query_y)]
    correct = sum(int(o[-1].argmax() == y) for o, y in zip(outputs, query_y))
    return torch.stack(losses).mean(), torch.tensor(correct / len(query_y))


# ---- the mistakes and the checks they fail -------------------------------------------------------

def leak(label):
    return wrong_sequences(query_label=label)


FIRST_CLASS = leak(lambda n, n_way: F.one_hot(torch.zeros(n, dtype=torch.int64), n_way).float())
UNIFORM = leak(lambda n, n_way: torch.full((n, n_way), 1.0 / n_way))
APART = wrong_sequences(label_order=lambda s, g: torch.randperm(s, generator=g))  # labels shuffled on their own
LABELS_KEPT = wrong_sequences(label_order=lambda s, g: torch.arange(s))  # embeddings shuffled, labels not
PER_QUERY = wrong_sequences(per_query=True)
# what any wrong sequences fail besides their own check (PREFIX earns its point only with right sequences)
WRONG_VALUE = {SEQUENCES, GENERATOR, INPUTS_KEPT, PREFIX}

MISTAKES = [
    ({"build_sequences": FIRST_CLASS}, WRONG_VALUE | {LEAK}),
    ({"build_sequences": UNIFORM}, WRONG_VALUE | {LEAK}),
    ({"build_sequences": APART}, WRONG_VALUE | {PAIRS}),
    ({"build_sequences": LABELS_KEPT}, WRONG_VALUE | {PAIRS}),
    ({"build_sequences": PER_QUERY}, WRONG_VALUE | {PREFIX}),
    ({"build_sequences": query_first}, WRONG_VALUE | {LEAK, PAIRS, PREFIX}),
    ({"build_sequences": global_order}, {GENERATOR}),
    ({"build_sequences": no_shuffle}, {GENERATOR}),
    ({"build_sequences": own_generator}, {GENERATOR}),
    ({"build_sequences": shuffled_in_place}, {INPUTS_KEPT}),
    ({"causal_mask": strict_mask}, {MASK, PAST}),
    ({"causal_mask": one_ahead_mask}, {MASK, NO_FUTURE}),
    ({"causal_mask": inverted_mask}, {MASK, NO_FUTURE, PAST}),
    ({"causal_mask": float_mask}, {MASK}),
    ({"causal_attention": unscaled}, {ATTENTION, SCALED, ATTENTION_SIZES}),
    ({"causal_attention": by_d_k}, {ATTENTION, SCALED, ATTENTION_SIZES}),
    ({"causal_attention": over_queries}, {ATTENTION, SCALED, OVER_KEYS, CAUSAL, ATTENTION_SIZES}),
    ({"causal_attention": zero_masked}, {ATTENTION, CAUSAL, ATTENTION_SIZES}),
    ({"causal_attention": unmasked}, {ATTENTION, SCALED, OVER_KEYS, CAUSAL, ATTENTION_SIZES}),
    ({"causal_attention": strict_attention}, {ATTENTION, SCALED, OVER_KEYS, CAUSAL, ATTENTION_SIZES}),
    ({"causal_attention": one_ahead_attention}, {ATTENTION, SCALED, OVER_KEYS, CAUSAL, ATTENTION_SIZES}),
    ({"causal_attention": scaled_in_place}, {ATTENTION_SIZES}),
    ({"query_loss": every_position}, {LOSS, LOSS_AT_QUERY, GRADIENT, LOSS_SIZES}),
    ({"query_loss": mean_of_positions}, {LOSS, LOSS_AT_QUERY, GRADIENT, LOSS_SIZES}),
    ({"query_loss": first_position}, {LOSS, LOSS_AT_QUERY, ACCURACY, GRADIENT, LOSS_SIZES}),
    ({"query_loss": summed_loss}, {LOSS, LOSS_AT_QUERY, GRADIENT, LOSS_SIZES}),
    ({"query_loss": item_loss}, {GRADIENT}),
    ({"query_loss": detached_loss}, {GRADIENT}),
    ({"query_loss": accuracy_everywhere}, {LOSS, ACCURACY, LOSS_SIZES}),
    ({"query_loss": percent}, {LOSS, ACCURACY, LOSS_SIZES}),
    ({"query_loss": stabilised_in_place}, {LOSS_SIZES}),
]


@pytest.mark.parametrize("replaced,expected", MISTAKES)
def test_a_mistake_fails_exactly_its_checks(replaced, expected):
    assert failing(**replaced) == expected


@pytest.mark.parametrize("seed", SEEDS[1:])
def test_every_mistake_fails_the_same_checks_whatever_the_seed(seed):
    graded = GradedSet("05_black_box", seed)
    for replaced, expected in MISTAKES:
        assert graded.failing(**replaced) == expected, (seed, replaced)


RIGHT = [{"build_sequences": argsort_order}, {"build_sequences": eye_and_loop},
         {"build_sequences": multinomial_order}, {"causal_mask": triu_mask}, {"causal_mask": arange_mask},
         {"causal_mask": loop_mask}, {"causal_attention": sdpa}, {"causal_attention": big_negative},
         {"causal_attention": looped}, {"causal_attention": triu_attention}, {"query_loss": by_hand},
         {"query_loss": looped_loss}]


@pytest.mark.parametrize("seed", SEEDS)
def test_right_solutions_written_otherwise_get_full_marks(seed):
    graded = SET if seed is None else GradedSet("05_black_box", seed)
    for replaced in RIGHT:
        assert graded.failing(**replaced) == set(), (seed, replaced)


@pytest.mark.parametrize("replaced,check,says", [
    ({"build_sequences": FIRST_CLASS}, LEAK, "leaks"),
    ({"build_sequences": UNIFORM}, LEAK, "zero label vector"),
    ({"build_sequences": APART}, PAIRS, "keeps its own label"),
    ({"build_sequences": PER_QUERY}, PREFIX, "shuffle once per episode"),
    ({"build_sequences": global_order}, GENERATOR, "not from the global one"),
    ({"build_sequences": no_shuffle}, GENERATOR, "not shuffled"),
    ({"build_sequences": own_generator}, GENERATOR, "the generator you are given"),
    ({"build_sequences": shuffled_in_place}, INPUTS_KEPT, "in place"),
    ({"causal_mask": strict_mask}, PAST, "reads itself too"),
    ({"causal_mask": one_ahead_mask}, NO_FUTURE, "a later one"),
    ({"causal_mask": inverted_mask}, MASK, "inverted"),
    ({"causal_attention": unscaled}, SCALED, "divide q k^T by sqrt(d_k)"),
    ({"causal_attention": by_d_k}, SCALED, "with larger keys"),
    ({"causal_attention": over_queries}, OVER_KEYS, "wrong dimension"),
    ({"causal_attention": zero_masked}, CAUSAL, "-inf"),
    ({"causal_attention": one_ahead_attention}, CAUSAL, "changes with later positions"),
    ({"causal_attention": strict_attention}, CAUSAL, "read at least itself"),
    ({"causal_attention": scaled_in_place}, ATTENTION_SIZES, "in place"),
    ({"query_loss": every_position}, LOSS_AT_QUERY, "support positions too"),
    ({"query_loss": mean_of_positions}, LOSS_AT_QUERY, "averaged over the positions"),
    ({"query_loss": item_loss}, GRADIENT, ".item()"),
    ({"query_loss": accuracy_everywhere}, ACCURACY, "every position"),
    ({"query_loss": percent}, ACCURACY, "not a percentage"),
    ({"query_loss": stabilised_in_place}, LOSS_SIZES, "in place"),
])
def test_the_check_meant_for_a_mistake_names_it(replaced, check, says):
    message = next(r.message for r in SET.results({**REFERENCES, **replaced}) if r.name == check)
    assert says in message


def test_hidden_messages_reveal_no_numbers_of_the_inputs():
    for message in SET.hidden_messages(*(replaced for replaced, _ in MISTAKES)):
        assert not any(ch.isdigit() for ch in message), message


def test_scores_far_above_zero_hide_a_mask_made_by_zeroing_and_nothing_else():
    """The scaling and softmax checks judge inputs whose scores lie far above 0, where zeroing a masked score
    takes it out of the softmax about as well as -inf: so they judge scaling and the softmax's dimension alone."""
    from mlcourse.grading.checks.ex05_black_box import high_scores, zero_masked_attention

    g = torch.Generator().manual_seed(0)
    for d_k in (1, 16, 64):
        q, k, v = high_scores(g, 2, 7, d_k, 3)
        scores = q @ k.transpose(-1, -2) / math.sqrt(d_k)
        assert scores.min() > 25
        expected = REFERENCES["causal_attention"](q, k, v)
        assert torch.allclose(zero_masked_attention(q, k, v), expected, rtol=1e-4, atol=1e-5)
        assert not torch.allclose(over_queries(q, k, v), expected, rtol=1e-4, atol=1e-5)
        if d_k > 1:
            assert not torch.allclose(unscaled(q, k, v), expected, rtol=1e-2, atol=1e-2)


def test_the_adapter_returns_the_gradient_and_the_inputs_after_the_call():
    outputs, query_y = torch.randn(3, 4, 5), torch.tensor([0, 4, 2])
    out = adapters.outputs_gradients_inputs(REFERENCES["query_loss"], 2, outputs, query_y, torch.tensor(1.0),
                                            torch.tensor(0.0))
    loss, acc, grad, outputs_after, y_after = out
    leaf = outputs.clone().requires_grad_()
    expected = torch.autograd.grad(REFERENCES["query_loss"](leaf, query_y)[0], leaf)[0]
    assert torch.allclose(grad, expected) and grad[:, :-1].abs().max() == 0
    assert torch.equal(outputs_after, outputs) and torch.equal(y_after, query_y)
    assert not adapters.outputs_gradients_inputs(item_loss, 2, outputs, query_y, torch.tensor(1.0),
                                                 torch.tensor(0.0))[2].abs().max() > 0
    changed = adapters.outputs_gradients_inputs(stabilised_in_place, 2, outputs.clone(), query_y)
    assert len(changed) == 4 and not torch.equal(changed[2], outputs)  # no weights: no gradients
