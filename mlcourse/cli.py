"""`python -m mlcourse train`, `evaluate` and `runs`: training outside notebooks, and the chapters' finished runs."""

import dataclasses
from pathlib import Path

from mlcourse import configs, runs
from mlcourse.data import EpisodeSampler, load_omniglot
from mlcourse.engine import evaluate, load_checkpoint, train
from mlcourse.utils import full_mode, get_device, seed_everything


def add_commands(commands) -> None:
    t = commands.add_parser("train", help="meta-train a method, with checkpoints and exact resume")
    t.add_argument("--method", required=True, choices=sorted(configs.METHODS))
    t.add_argument("--full", action="store_true", help="published settings (default: quick, or $MLCOURSE_FULL)")
    t.add_argument("--checkpoint", required=True, help="where to save (and resume from)")
    t.add_argument("--resume", action="store_true", help="continue the run saved in --checkpoint")
    t.add_argument("--steps", type=int)
    t.add_argument("--n-way", type=int)
    t.add_argument("--k-shot", type=int)
    t.add_argument("--n-query", type=int)
    t.add_argument("--lr", type=float, help="outer (Adam) learning rate")
    t.add_argument("--meta-batch-size", type=int)
    t.add_argument("--split", choices=["vinyals", "lake"])
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", help="cpu, cuda, ... (default: a GPU when present)")
    t.set_defaults(run=run_train)

    e = commands.add_parser("evaluate", help="test a checkpoint on the test classes (95% CI)")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--n-way", type=int, default=5)
    e.add_argument("--k-shot", type=int, default=1)
    e.add_argument("--n-query", type=int, default=15)
    e.add_argument("--episodes", type=int, default=600)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device")
    e.set_defaults(run=run_evaluate)

    r = commands.add_parser("runs", help="train again the finished runs that the chapters replay (`make runs`)")
    r.add_argument("names", nargs="*", help="runs to train (default: all of them)")
    r.add_argument("--full", action="store_true", help="the full-mode runs (published settings, for a GPU)")
    r.add_argument("--list", action="store_true", help="list the runs and whether each is saved, then stop")
    r.add_argument("--resume", action="store_true", help="continue from the checkpoint an interrupted run left")
    r.add_argument("--device", help="cpu, cuda, ... (default: a GPU when present)")
    r.set_defaults(run=run_runs)


def _config_from_args(args) -> configs.RunConfig:
    config = configs.preset(args.method, full=args.full or full_mode())
    overrides = {"n_way": args.n_way, "k_shot": args.k_shot, "n_query": args.n_query, "split": args.split}
    config = dataclasses.replace(config, **{k: v for k, v in overrides.items() if v is not None})
    train_overrides = {"steps": args.steps, "outer_lr": args.lr, "meta_batch_size": args.meta_batch_size}
    train_config = dataclasses.replace(config.train, seed=args.seed,
                                       **{k: v for k, v in train_overrides.items() if v is not None})
    return dataclasses.replace(config, train=train_config)


def run_train(args) -> int:
    config = _config_from_args(args)
    if args.resume and Path(args.checkpoint).is_file():  # the saved run's settings win, so that resuming cannot silently change the run
        config = configs.from_dict(load_checkpoint(args.checkpoint)["config"]["run"])
    seed_everything(config.train.seed)
    method, sampler, val_sampler = configs.build(config, seed=config.train.seed)
    print(f"training {config.method} on {config.split}/{config.train_part}: {config}")
    history = train(method, sampler, config.train, val_sampler, checkpoint=args.checkpoint, resume=args.resume,
                    device=get_device(args.device), extra_config={"run": configs.to_dict(config)})
    if history.val_metric:
        print(f"last validation {method.metric}: {history.val_metric[-1]:.4f} ± {history.val_ci[-1]:.4f}")
    print(f"checkpoint: {args.checkpoint}")
    return 0


def run_evaluate(args) -> int:
    state = load_checkpoint(args.checkpoint)
    config = configs.from_dict(state["config"]["run"])
    if config.data != "omniglot":
        raise SystemExit(f"`evaluate` tests Omniglot classifiers on test classes, and this checkpoint is a {config.data} "
                         "run: chapter 6 evaluates the sinusoid runs and chapter 8 the bandit players")
    method = configs.make_method(config)
    method.load_state_dict(state["model"])
    device = get_device(args.device)
    test = load_omniglot(config.split, "test")
    sampler = EpisodeSampler(test.images, args.n_way, args.k_shot, args.n_query, seed=args.seed)
    mean, ci = evaluate(method.to(device), sampler, args.episodes, device=device, progress=True)
    print(f"{config.method}, {args.n_way}-way {args.k_shot}-shot on {config.split} test classes: "
          f"{100 * mean:.2f} ± {100 * ci:.2f} % ({args.episodes} episodes, step {state['step']})")
    return 0


def run_runs(args) -> int:
    full = args.full or full_mode()
    registry = runs.registry(full)
    unknown = sorted(set(args.names) - set(registry))
    if unknown:
        raise SystemExit(f"unknown run(s) {', '.join(unknown)}; the runs are: {', '.join(registry)}")
    for name in args.names or registry:
        path = runs.run_path(name, full)
        if args.list:
            kind = "reference" if runs.is_reference(name) else "quick"
            print(f"{name:24} {kind:9} {'saved' if path.is_file() else 'missing'}  {path}")
            continue
        checkpoint = runs.checkpoint_path(name)
        print(f"training {name}: {registry[name]}\ncheckpoints: {checkpoint}")
        run = runs.train_run(name, registry[name], path, device=args.device, checkpoint=checkpoint, resume=args.resume)
        print(f"saved {path} ({run.made['wall_s'] / 60:.1f} min)")
    return 0
