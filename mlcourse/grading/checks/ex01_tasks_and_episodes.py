"""Checks of chapter 1's exercises: the episode sampler, pixel-space nearest neighbour, episode accuracy.

The grader draws every input from a seed, runs the student's functions on them in the student's
kernel, and judges the returned tensors here, in its own process, against mlcourse's reference
implementation (`EpisodeSampler`, `PixelNearestNeighbour`, `accuracy`) and against properties
that any correct solution has.
"""

import torch
import torch.nn.functional as F

from mlcourse.data.episodes import Episode, EpisodeSampler
from mlcourse.grading.judges import as_labels, count, expect_shape, single, unpack
from mlcourse.grading.spec import Exercise, Fail, Seeded, assemble
from mlcourse.methods.base import accuracy
from mlcourse.methods.nearest import PixelNearestNeighbour

EXERCISE = "01_tasks_and_episodes"
EPISODE = ("support_x", "support_y", "query_x", "query_y")
NOISE = 1.0  # pixel noise around each class's centre: enough that 1-NN makes mistakes worth matching


def reference_sample_episode(images, n_way, k_shot, n_query, generator):
    """mlcourse's EpisodeSampler, drawing with `generator`: the model answer to `sample_episode`."""
    sampler = EpisodeSampler(images, n_way, k_shot, n_query)
    sampler.generator = generator
    ep = sampler.sample()
    return ep.support_x, ep.support_y, ep.query_x, ep.query_y


def reference_nearest_neighbour_predict(support_x, support_y, query_x, n_way):
    """Labels from mlcourse's PixelNearestNeighbour (L2 on raw pixels)."""
    no_labels = torch.zeros(len(query_x), dtype=torch.int64)  # the reference never reads query_y
    episode = Episode(support_x, support_y, query_x, no_labels, n_way, k_shot=0, n_query=0)
    return PixelNearestNeighbour("l2").predict(episode).argmax(dim=-1)


def reference_episode_accuracy(predictions, query_y):
    """mlcourse's accuracy, fed one-hot logits of the predicted labels."""
    n_way = int(torch.cat([predictions, query_y]).max()) + 1
    return accuracy(F.one_hot(predictions, n_way).float(), query_y)


REFERENCES = {
    "sample_episode": reference_sample_episode,
    "nearest_neighbour_predict": reference_nearest_neighbour_predict,
    "episode_accuracy": reference_episode_accuracy,
}


# ---- the episode sampler ---------------------------------------------------------------------

def _episode(out, n_way, k_shot, n_query):
    """The four tensors of a sampled episode, checked for shape."""
    sx, sy, qx, qy = unpack(out, EPISODE)
    expect_shape(sx, (n_way * k_shot, 1, 28, 28), "support_x", "(n_way * k_shot, 1, 28, 28)")
    expect_shape(sy, (n_way * k_shot,), "support_y", "(n_way * k_shot,)")
    expect_shape(qx, (n_way * n_query, 1, 28, 28), "query_x", "(n_way * n_query, 1, 28, 28)")
    expect_shape(qy, (n_way * n_query,), "query_y", "(n_way * n_query,)")
    return sx, sy, qx, qy


def _which(images, x, what):
    """(class, drawing) of each image of `x`, found among `images`; fails for images not taken from it."""
    flat = images.reshape(-1, 28 * 28)  # (n_classes * n_per_class, 784)
    d = torch.cdist(x.reshape(len(x), -1).to(flat.dtype), flat, compute_mode="donot_use_mm_for_euclid_dist")
    best = d.min(dim=1) if len(x) else None
    if best is not None and (best.values > 1e-4).any():
        raise Fail(f"{what} holds images that are not among `images` (are they modified or made up?)")
    idx = best.indices if best is not None else torch.zeros(0, dtype=torch.int64)
    n_per_class = images.shape[1]
    return idx // n_per_class, idx % n_per_class


def _check_labels(out, n_way, k_shot, n_query):
    _, sy, _, qy = _episode(out, n_way, k_shot, n_query)
    for y, per_class, name in ((sy, k_shot, "support_y"), (qy, n_query, "query_y")):
        if y.dtype != torch.int64:
            raise Fail(f"{name} should be int64 (torch.long), the dtype of labels in PyTorch")
        if not torch.equal(y, torch.arange(n_way).repeat_interleave(per_class)):
            raise Fail(f"{name} should be 0..n_way-1 in class-major order: all examples of the episode's "
                       "first class (label 0), then all of its second class (label 1), ...")


def _check_classes(out, images, n_way, k_shot, n_query):
    sx, sy, qx, qy = _episode(out, n_way, k_shot, n_query)
    s_class, _ = _which(images, sx, "support_x")
    q_class, _ = _which(images, qx, "query_x")
    sy, qy = as_labels(sy, "support_y"), as_labels(qy, "query_y")
    chosen = []
    for c in range(n_way):
        classes = s_class[sy == c].unique()
        if classes.numel() != 1:
            raise Fail("every support image of one label should come from one and the same class of `images`")
        if not torch.all(q_class[qy == c] == classes[0]):
            raise Fail("each query should come from the class that its label names in the support set")
        chosen.append(int(classes[0]))
    if len(set(chosen)) != n_way:
        raise Fail("the n_way classes of an episode should be distinct")


def _check_disjoint(out, images, n_way, k_shot, n_query):
    sx, _, qx, _ = _episode(out, n_way, k_shot, n_query)
    s_class, s_draw = _which(images, sx, "support_x")
    q_class, q_draw = _which(images, qx, "query_x")
    ids = torch.cat([s_class, q_class]) * images.shape[1] + torch.cat([s_draw, q_draw])
    if ids.unique().numel() != ids.numel():
        raise Fail("an image appears twice in the episode: support and query should be distinct drawings")


def _same(a, b):
    return len(a) == len(b) and all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, b))


def _sampler_checks(ex: Exercise, g: torch.Generator) -> None:
    fn = ex.function("sample_episode", "sample_episode(images, n_way, k_shot, n_query, generator)",
                     references=("mlcourse.data.episodes.EpisodeSampler",), flag_names=("EpisodeSampler",))
    seed = lambda: Seeded(int(torch.randint(2**31, (1,), generator=g)))  # noqa: E731
    small = torch.rand(10, 20, 1, 28, 28, generator=g)  # (n_classes, n_per_class, 1, 28, 28)
    configs = [(small, 5, 1, 3), (small, 3, 4, 6)]
    basic = [ex.call("sample_episode", *cfg, seed()) for cfg in configs]
    many = torch.rand(48, 6, 1, 28, 28, generator=g)
    every = torch.rand(6, 5, 1, 28, 28, generator=g)
    edge_configs = [(many, 40, 1, 5), (every, 6, 2, 3), (small, 5, 1, 1)]  # many ways; all of it; 1-shot 1-query
    edge = [ex.call("sample_episode", *cfg, seed()) for cfg in edge_configs]

    def shapes(*outs):
        for out, (_, n, k, q) in zip(outs, configs):
            sx, _, qx, _ = _episode(out, n, k, q)
            if not (sx.is_floating_point() and qx.is_floating_point()):
                raise Fail("support_x and query_x should be float images, as taken from `images`")

    def classes(*outs):
        for o, cfg in zip(outs, configs):
            _check_classes(o, *cfg)

    fn.check("returns (support_x, support_y, query_x, query_y) with the right shapes", 1, basic, shapes, hidden=False,
             needs=classes)
    fn.check("labels are 0..n_way-1 (int64), class by class", 1, basic,
             lambda *outs: [_check_labels(o, *cfg[1:]) for o, cfg in zip(outs, configs)], hidden=False,
             needs=classes)
    fn.check("each label is one class of `images`, n_way distinct classes, queries match", 1, basic, classes,
             hidden=False)
    fn.check("support and query images are distinct drawings", 1, basic,
             lambda *outs: [_check_disjoint(o, *cfg) for o, cfg in zip(outs, configs)], hidden=False, needs=classes)

    def edges(*outs):
        for out, cfg in zip(outs, edge_configs):
            _check_labels(out, *cfg[1:])
            _check_classes(out, *cfg)
            _check_disjoint(out, *cfg)

    fn.check("edge cases: many ways, every class and drawing used, 1-shot", 1, edge, edges)

    r = seed().seed
    twice = [ex.call("sample_episode", small, 5, 2, 2, Seeded(r), global_seed=1),
             ex.call("sample_episode", small, 5, 2, 2, Seeded(r), global_seed=2),
             ex.call("sample_episode", small, 5, 2, 2, Seeded(r + 1), global_seed=1),
             ex.call("sample_episode", small, 5, 2, 2, Seeded(r + 2), global_seed=1)]

    def reproducible(a, b, c, d):
        for out in (a, b, c, d):
            _episode(out, 5, 2, 2)
        if not _same(a, b):
            raise Fail("two calls with generators seeded alike gave different episodes: draw every random "
                       "number from `generator` (e.g. torch.randperm(n, generator=generator)), never from "
                       "the global random state")
        if _same(a, c) and _same(a, d):
            raise Fail("generators seeded differently gave the same episode: the draws should depend on `generator`")

    fn.check("reproducible from the generator alone", 1, twice, reproducible,
             needs=lambda *outs: [(_check_labels(o, 5, 2, 2), _check_classes(o, small, 5, 2, 2)) for o in outs])

    few = torch.rand(8, 20, 1, 28, 28, generator=g)
    stream = [ex.call("sample_episode", few, 3, 1, 2, seed()) for _ in range(40)]

    def random(*outs):
        classes, drawings = set(), set()
        for out in outs:
            sx, _, qx, _ = _episode(out, 3, 1, 2)
            for x, what in ((sx, "support_x"), (qx, "query_x")):
                c, i = _which(few, x, what)
                classes.update(c.tolist())
                drawings.update(i.tolist())
        if len(classes) < few.shape[0]:
            raise Fail("over many episodes some classes were never drawn: pick the n_way classes at random "
                       "among all of them")
        if len(drawings) < few.shape[1] // 2:
            raise Fail("over many episodes the same few drawings of each class keep coming back: pick "
                       "k_shot + n_query drawings at random among all of them")

    fn.check("draws classes and drawings at random over all of them", 1, stream, random)


# ---- pixel-space nearest neighbour -----------------------------------------------------------

def _toy_episode(g, n_way, k_shot, n_query, scaled=False, shuffled=False):
    """Noisy copies of one random centre per class; optionally rescaled images, or a shuffled support set."""
    centres = torch.rand(n_way, 1, 28, 28, generator=g)  # (n_way, 1, 28, 28)
    support_x = centres.repeat_interleave(k_shot, 0) + NOISE * torch.randn(n_way * k_shot, 1, 28, 28, generator=g)
    query_x = centres.repeat_interleave(n_query, 0) + NOISE * torch.randn(n_way * n_query, 1, 28, 28, generator=g)
    support_y = torch.arange(n_way).repeat_interleave(k_shot)  # (n_way * k_shot,)
    if scaled:  # each image multiplied by its own factor in about [0.1, 10]
        support_x = support_x * torch.exp(torch.randn(len(support_x), 1, 1, 1, generator=g))
        query_x = query_x * torch.exp(torch.randn(len(query_x), 1, 1, 1, generator=g))
    if shuffled and n_way > 1:
        perm = torch.randperm(len(support_y), generator=g)
        while torch.equal(support_y[perm], support_y):  # another order than class by class
            perm = torch.randperm(len(support_y), generator=g)
        support_x, support_y = support_x[perm], support_y[perm]
    return support_x, support_y, query_x, n_way


def _predictions(out, n_queries, what="the predictions"):
    pred = single(out, "predicted labels")
    expect_shape(pred, (n_queries,), what, "(n_queries,), one label per query")
    return as_labels(pred, what)


def _match_reference(calls_args):
    def judge(*outs):
        wrong = total = 0
        for out, args in zip(outs, calls_args):
            expected = reference_nearest_neighbour_predict(*args)
            wrong += int((_predictions(out, len(expected)) != expected).sum())
            total += len(expected)
        if wrong:
            raise Fail(f"{count(wrong, 'query')} of {total} got another label than the nearest support image's")
    return judge


def _nearest_checks(ex: Exercise, g: torch.Generator) -> None:
    fn = ex.function("nearest_neighbour_predict", "nearest_neighbour_predict(support_x, support_y, query_x, n_way)",
                     references=("mlcourse.methods.nearest.PixelNearestNeighbour",
                                 "mlcourse.methods.nearest.min_per_class"),
                     flag_names=("PixelNearestNeighbour", "min_per_class"))

    def calls(configs, **kw):
        args = [_toy_episode(g, *cfg, **kw) for cfg in configs]
        return [ex.call(fn.name, *a) for a in args], args

    first, first_args = calls([(5, 1, 3), (5, 1, 4)])

    def format_(out, _):
        pred = single(out, "predicted labels")
        expect_shape(pred, (15,), "the predictions", "(n_queries,), one label per query")
        if pred.dtype != torch.int64:
            raise Fail("the predictions should be int64 labels (torch.long), like support_y")
        if pred.min() < 0 or pred.max() >= 5:
            raise Fail("the predictions should be labels in 0..n_way-1")

    fn.check("returns one int64 label in 0..n_way-1 per query", 1, first, format_, hidden=False,
             needs=_match_reference(first_args))
    fn.check("matches pixel-space 1-nearest-neighbour on 5-way 1-shot episodes", 1, first,
             _match_reference(first_args), hidden=False)
    keys, args = calls([(5, 5, 4), (20, 1, 2), (1, 3, 2)], shuffled=True)
    fn.check("k-shot, many ways and a single way", 1, keys, _match_reference(args))
    keys, args = calls([(5, 2, 3), (10, 1, 3)], scaled=True, shuffled=True)
    fn.check("images of unequal scales (L2 distance on raw pixels, not cosine)", 1, keys, _match_reference(args))
    keys, args = calls([(5, 3, 3), (8, 2, 2)], shuffled=True)
    fn.check("support set in any order (labels come from support_y)", 1, keys, _match_reference(args))

    support_x, support_y, query_x, n_way = _toy_episode(g, 5, 2, 4, shuffled=True)
    perm = torch.randperm(len(query_x), generator=g)
    outlier = 20 * torch.rand(1, 1, 28, 28, generator=g)  # a query far brighter than every other image
    alone = [ex.call(fn.name, support_x, support_y, query_x, n_way),
             ex.call(fn.name, support_x, support_y, query_x[perm], n_way),
             ex.call(fn.name, support_x, support_y, query_x[:1], n_way),
             ex.call(fn.name, support_x, support_y, torch.cat([query_x, outlier]), n_way)]

    def independent(whole, permuted, one, more):
        whole = _predictions(whole, len(query_x))
        if not torch.equal(_predictions(permuted, len(query_x)), whole[perm]):
            raise Fail("shuffling the queries changed their labels: each query should be labelled on its own")
        if not torch.equal(_predictions(one, 1), whole[:1]):
            raise Fail("a query alone got another label than among the others: label each query on its own")
        if not torch.equal(_predictions(more, len(query_x) + 1)[:-1], whole):
            raise Fail("adding one more query changed the labels of the others: label each query on its own, "
                       "without statistics of the whole query set")

    fn.check("each query labelled on its own (order and number of queries do not matter)", 1, alone, independent,
             needs=_match_reference([(support_x, support_y, query_x, n_way)]))


# ---- accuracy --------------------------------------------------------------------------------

def _accuracy_checks(ex: Exercise, g: torch.Generator) -> None:
    fn = ex.function("episode_accuracy", "episode_accuracy(predictions, query_y)",
                     references=("mlcourse.methods.base.accuracy",))

    def close_to_reference(cases):
        def judge(*outs):
            for out, (pred, y) in zip(outs, cases):
                acc = single(out, "accuracy")
                if acc.numel() != 1:
                    raise Fail("should return a single number (a 0-dim tensor or a float)")
                expected = float(reference_episode_accuracy(pred, y))
                if not abs(float(acc.reshape(())) - expected) <= 1e-6:
                    raise Fail("returned another value than the share of correct predictions (a number in [0, 1])")
        return judge

    worked = [(torch.tensor([0, 1, 1, 2]), torch.tensor([0, 1, 2, 2]))]
    fn.check("a worked case: 3 of 4 correct is 0.75", 1, [ex.call(fn.name, *c) for c in worked],
             close_to_reference(worked), hidden=False)
    y = torch.randint(20, (75,), generator=g)
    pred = torch.where(torch.rand(75, generator=g) < 0.6, y, torch.randint(20, (75,), generator=g))
    cases = [(pred, y), (y.clone(), y), ((y + 1) % 20, y), (pred[:1], y[:1])]
    fn.check("random cases, all correct, none correct, a single query", 1,
             [ex.call(fn.name, *c) for c in cases], close_to_reference(cases))


def build(seed: int) -> Exercise:
    """Chapter 1's graded functions, the grader's calls (inputs drawn from `seed`) and the checks."""
    # the solution runs in about 10 s on a laptop CPU; no cell of it needs a minute
    return assemble(EXERCISE, seed, [_sampler_checks, _nearest_checks, _accuracy_checks], uses_omniglot=True,
                    limits={"timeout": 180, "cell_timeout": 60, "call_timeout": 10})
