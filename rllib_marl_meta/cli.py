"""The ``rllib-marl-meta`` command line (also ``python -m rllib_marl_meta``).

Subcommands:

- ``train -f FILE.yaml``: runs the experiments of an RLlib-style YAML file with Ray Tune, showing
  meta-learning columns in the progress table (see :mod:`rllib_marl_meta.experiments` for the
  file format and the override options);
- ``evaluate CHECKPOINT``: meta-tests a MAML or RL² checkpoint on new tasks and writes a table,
  a JSON file and a PNG plot of the adaptation curve (:mod:`rllib_marl_meta.evaluation.report`);
- ``list``: built-in envs and their task spaces, algorithms and tuned examples.

Bad input (unknown algorithm, env or config key, missing or malformed file, unusable
checkpoint) is reported as one line on stderr with exit code 2, before Ray starts where possible;
``-v`` adds the traceback. A failed trial exits with 1.

Stopping: Ctrl-C (SIGINT) exits with 130. SIGTERM during ``train`` or ``evaluate`` (``kill``, a
job scheduler, a container stop) interrupts the command the same way: the Ray instance it started
is shut down, which ends the Tune trials and their workers, and the exit code is 143 (128 + 15,
the shell's code for SIGTERM). A second SIGTERM during that clean-up ends the process at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import re
import signal
import socket
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from rllib_marl_meta.checkpoints import CheckpointError, check_checkpoint_files
from rllib_marl_meta.console import quiet_rllib_noise
from rllib_marl_meta.experiments import (
    Experiment,
    ExperimentError,
    Overrides,
    build_experiment,
    load_experiments,
    load_yaml_file,
    parse_override,
)

PROG = "rllib-marl-meta"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
# Exit codes of an interrupted command, as a shell reports a process ended by that signal.
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130: Ctrl-C
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143: SIGTERM
# At most this many per-inner-episode columns for RL² in the progress table.
MAX_EPISODE_COLUMNS = 5


class CLIError(ExperimentError):
    """Bad command-line input that is not about an experiment file (exit code 2)."""


# The handler of the innermost active `sigterm_interrupts` block (None outside one).
_sigterm_handler: Callable[[int, Any], None] | None = None


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived while ``train`` or ``evaluate`` ran (see :func:`sigterm_interrupts`).

    A ``KeyboardInterrupt``, so it unwinds exactly as Ctrl-C does (``finally`` blocks shut Ray
    down); :func:`main` turns it into exit code 143.
    """


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated` in the main thread.

    Why: Python's default SIGTERM action ends the process without running ``finally`` blocks
    or ``atexit`` hooks, so the Ray instance the CLI started (and the Tune trials on it) could
    keep running; the handler ``ray.init`` installs exits with code 15, which says nothing of
    the signal. Raised as an exception instead, SIGTERM unwinds like Ctrl-C,
    ``ray.shutdown()`` stops every Ray process of the command and the exit code is 143.

    The first SIGTERM puts the previous handler back, so a second one during the clean-up acts
    as before (by default: ends the process at once). The previous handler is restored when
    the block ends. Outside the main thread (where Python cannot set handlers) this does
    nothing. ``ray.init`` sets a SIGTERM handler of its own (``sys.exit(15)``), so
    :func:`init_ray` calls :func:`rearm_sigterm_handler` after it.
    """
    global _sigterm_handler
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    restore = signal.SIG_DFL if previous is None else previous  # None: set outside Python.

    def on_sigterm(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, restore)
        raise Terminated(f"received signal {signal.Signals(signum).name}")

    outer, _sigterm_handler = _sigterm_handler, on_sigterm
    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        _sigterm_handler = outer
        signal.signal(signal.SIGTERM, restore)


# --- Paths ---------------------------------------------------------------------------------------


def tuned_examples_dir() -> Path | None:
    """``tuned_examples/`` of a source checkout (next to the package), if there is one."""
    candidate = Path(__file__).resolve().parent.parent / "tuned_examples"
    return candidate if candidate.is_dir() else None


def resolve_experiment_file(name: str) -> Path:
    """The experiment file: a path, or a path relative to ``tuned_examples/`` (``maml/x.yaml``)."""
    path = Path(name)
    if path.exists():
        return path
    examples = tuned_examples_dir()
    if examples is not None and not path.is_absolute():
        for candidate in (examples / path, examples / f"{name}.yaml"):
            if candidate.is_file():
                return candidate
    return path  # Missing: the loader reports it.


def algorithm_kind(algo_cls: type) -> str | None:
    """``"MAML"`` or ``"RL2"`` if ``algo_cls`` is (a subclass of) one of ours, else None."""
    for klass in getattr(algo_cls, "__mro__", ()):
        if klass.__module__.startswith("rllib_marl_meta.") and klass.__name__ in ("MAML", "RL2"):
            return klass.__name__
    return None


def resolve_checkpoint(path_text: str) -> tuple[Path, str]:
    """Checks an algorithm checkpoint and returns its directory and algorithm (MAML or RL2).

    Accepts the checkpoint directory itself or a Tune trial directory, whose newest
    ``checkpoint_*`` is used. Every file of the checkpoint is read once
    (:func:`rllib_marl_meta.checkpoints.check_checkpoint_files`), so a truncated or missing
    file is reported by name here rather than deep inside RLlib's restore. No Ray needed.
    """
    path = Path(path_text).expanduser().resolve()
    if not path.exists():
        raise CLIError(f"Checkpoint not found: {path}.")
    if not path.is_dir():
        raise CLIError(f"Checkpoint must be a directory (an RLlib algorithm checkpoint): {path}.")
    if not (path / "rllib_checkpoint.json").exists():
        trial_checkpoints = sorted(
            (p for p in path.glob("checkpoint_*") if (p / "rllib_checkpoint.json").exists()),
            key=lambda p: [int(n) for n in re.findall(r"\d+", p.name)] or [0],
        )
        if not trial_checkpoints:
            raise CLIError(
                f"{path} is not an RLlib algorithm checkpoint (no rllib_checkpoint.json) and "
                "holds no checkpoint_* directories."
            )
        path = trial_checkpoints[-1]
    if not (path / "class_and_ctor_args.pkl").exists():
        raise CLIError(
            f"{path} is not an algorithm checkpoint of the new API stack "
            "(class_and_ctor_args.pkl is missing)."
        )
    try:
        check_checkpoint_files(path)
        with open(path / "class_and_ctor_args.pkl", "rb") as f:
            algo_cls = pickle.load(f)["class"]
    except CheckpointError as exc:
        raise CLIError(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a pickle without the expected record.
        raise CLIError(f"Cannot read the algorithm class of checkpoint {path}: {exc}") from None
    kind = algorithm_kind(algo_cls)
    if kind is None:
        raise CLIError(
            f"Checkpoint {path} is from {getattr(algo_cls, '__name__', algo_cls)}, not a "
            "meta-learner: evaluate needs a MAML or RL2 checkpoint."
        )
    return path, kind


def rearm_sigterm_handler() -> None:
    """Gives SIGTERM back to :func:`sigterm_interrupts`' handler while one is active.

    ``ray.init`` replaces the SIGTERM handler with one that calls ``sys.exit(15)``: the process
    would exit with 15 and skip the clean-up message. Call this after ``ray.init``.
    """
    if _sigterm_handler is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _sigterm_handler)


# --- Ray -----------------------------------------------------------------------------------------


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fails fast on a ``host:port`` Ray address nothing listens on.

    ``ray.init`` would retry for minutes; ``auto`` and ``ray://`` addresses are left to it.
    """
    if address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise CLIError(
            "--ray-address (or RAY_ADDRESS) must be HOST:PORT (the head's GCS port, e.g. "
            f"127.0.0.1:6379), ray://HOST:PORT or auto; got {address!r}."
        )
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CLIError(f"Cannot reach the Ray cluster at {address}: {reason}.") from None


def init_ray(args: argparse.Namespace) -> tuple[bool, str | None]:
    """Starts or connects to Ray as the options say.

    ``--ray-address`` (or ``RAY_ADDRESS``, which ``ray job submit`` sets) connects to a running
    cluster; otherwise a local instance starts with ``--num-cpus`` CPUs. Returns whether this
    call initialised Ray, and the cluster address (None for a local instance).
    """
    import ray

    quiet_rllib_noise()
    address = args.ray_address or os.environ.get("RAY_ADDRESS") or None
    if address:
        check_reachable(address)
    if ray.is_initialized():
        return False, address
    if address:
        if args.num_cpus is not None:
            print(
                f"{PROG}: warning: --num-cpus is ignored when connecting to the cluster at "
                f"{address}.",
                file=sys.stderr,
            )
        try:
            ray.init(address=address)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            message = " ".join(str(exc).split())
            raise CLIError(f"Cannot connect to the Ray cluster at {address!r}: {message}") from exc
    else:
        # Worker processes (Tune trials, EnvRunners) drop RLlib's noise too; on a cluster the
        # job's own runtime env is left alone.
        ray.init(
            num_cpus=args.num_cpus,
            include_dashboard=args.dashboard,
            runtime_env={"worker_process_setup_hook": "rllib_marl_meta.console.quiet_rllib_noise"},
        )
    rearm_sigterm_handler()
    return True, address


# --- train ---------------------------------------------------------------------------------------


def check_trials_fit(experiments: Sequence[Experiment], on_cluster: bool) -> None:
    """Fails early when one trial needs more CPUs than Ray has (Tune would wait forever).

    On a cluster (``--ray-address``) this only warns: an autoscaler may add nodes.
    """
    import ray

    available = float(ray.cluster_resources().get("CPU", 0.0))
    for experiment in experiments:
        needed = experiment.cpus_per_trial()
        if needed <= available:
            continue
        message = (
            f"experiment {experiment.name!r}: one trial needs {needed:g} CPUs (1 for the "
            f"algorithm, 1 per EnvRunner and remote Learner) but Ray has {available:g}. Lower "
            f"`num_env_runners` (e.g. --config '{{\"num_env_runners\": 1}}')"
        )
        if on_cluster:
            print(f"{PROG}: warning: {message}, or make sure the cluster can scale up.")
        else:
            raise CLIError(f"{message}, or start Ray with more CPUs (--num-cpus).")


def _max_setting(experiment: Experiment, key: str, default: int) -> int:
    """The largest value a setting can take in an experiment's search space."""
    value = experiment.param_space.get(key, None)
    if value is None:
        config = experiment.algorithm_config()
        value = getattr(config, key, default)
    if isinstance(value, dict) and "grid_search" in value:
        candidates = value["grid_search"]
    elif hasattr(value, "categories"):
        candidates = value.categories
    elif hasattr(value, "upper"):
        candidates = [value.upper]
    else:
        candidates = [value]
    ints = [int(v) for v in candidates if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return max(ints) if ints else default


def progress_columns(experiment: Experiment) -> dict[str, str]:
    """Result keys and headers for Tune's progress table, chosen by algorithm.

    MAML: pre-adaptation return, return after each adaptation step, ``adaptation_delta`` and its
    95% interval. RL²: the return of inner episodes 1..n of a trial (at most
    ``MAX_EPISODE_COLUMNS``, always the first and last) and last-minus-first. Others: RLlib's
    episode return. All of them: iterations, env steps and time.
    """
    columns = {
        "training_iteration": "iter",
        "env_runners/num_env_steps_sampled_lifetime": "env steps",
        "time_total_s": "time (s)",
    }
    kind = algorithm_kind(experiment.algo_class)
    if kind == "MAML":
        columns["episode_return_mean"] = "pre-adapt return"
        for k in range(1, _max_setting(experiment, "inner_adaptation_steps", 1) + 1):
            columns[f"episode_return_mean_adapt_{k}"] = f"adapt {k} return"
        columns["adaptation_delta"] = "adaptation_delta"
        columns["adaptation_delta_ci95"] = "±95%"
    elif kind == "RL2":
        n = _max_setting(experiment, "episodes_per_trial", 10)
        if n <= MAX_EPISODE_COLUMNS:
            episodes = list(range(1, n + 1))
        else:
            step = (n - 1) / (MAX_EPISODE_COLUMNS - 1)
            episodes = sorted({1 + round(i * step) for i in range(MAX_EPISODE_COLUMNS)})
        for i in episodes:
            columns[f"env_runners/trial_episode_{i}_return_mean"] = f"ep {i} return"
        columns["env_runners/trial_adaptation_mean"] = f"ep {n} - ep 1"
    else:
        columns["env_runners/episode_return_mean"] = "return"
    return columns


def _lookup(result: dict[str, Any], key: str) -> Any:
    value: Any = result
    for part in key.split("/"):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _storage_path(path: str | None) -> str | None:
    if path is None or "://" in path:
        return path
    return str(Path(path).expanduser().resolve())


def run_experiment(experiment: Experiment, verbose: int) -> int:
    """Runs one experiment with Tune; prints a summary; returns the number of failed trials."""
    from ray import tune

    columns = progress_columns(experiment)
    reporter = tune.CLIReporter(
        metric_columns=columns, max_report_frequency=10 if verbose else 30, sort_by_metric=False
    )
    tuner = tune.Tuner(
        experiment.run,
        param_space=experiment.param_space,
        tune_config=tune.TuneConfig(num_samples=experiment.num_samples),
        run_config=tune.RunConfig(
            name=experiment.name,
            stop=experiment.stop,
            storage_path=_storage_path(experiment.storage_path),
            checkpoint_config=tune.CheckpointConfig(
                checkpoint_frequency=experiment.checkpoint_freq,
                checkpoint_at_end=experiment.checkpoint_at_end,
            ),
            progress_reporter=reporter,
            verbose=1 + min(verbose, 2),
        ),
    )
    results = tuner.fit()
    print(f"\n== {experiment.name} ({experiment.run} on {experiment.env}): {len(results)} trial(s)")
    failed = 0
    for result in results:
        trial_dir = result.path
        if result.error is not None:
            failed += 1
            first = str(result.error).strip().splitlines()
            print(f"  FAILED {trial_dir}: {first[-1] if first else type(result.error).__name__}")
            continue
        metrics = result.metrics or {}
        shown = [
            f"{header}={_format_value(_lookup(metrics, key))}"
            for key, header in columns.items()
            if _lookup(metrics, key) is not None
        ]
        print(f"  {trial_dir}")
        print(f"    {', '.join(shown)}")
        if result.checkpoint is not None:
            print(f"    checkpoint: {result.checkpoint.path}")
            if algorithm_kind(experiment.algo_class):
                print(f"    meta-test:  {PROG} evaluate {result.checkpoint.path}")
    if results.experiment_path:
        print(f"  results (TensorBoard, CSV, JSON): {results.experiment_path}")
    return failed


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    try:
        return f"{float(value):.4g}" if not isinstance(value, (int, bool)) else str(value)
    except (TypeError, ValueError):
        return str(value)


def cmd_train(args: argparse.Namespace) -> int:
    """``train``: checks every experiment first, then runs them one after the other.

    SIGTERM interrupts it as Ctrl-C does (:func:`sigterm_interrupts`).
    """
    with sigterm_interrupts():
        return _train(args)


def _train(args: argparse.Namespace) -> int:
    overrides = Overrides(
        config=parse_override(args.config, "--config"),
        stop=parse_override(args.stop, "--stop"),
        num_samples=args.num_samples,
        checkpoint_freq=args.checkpoint_freq,
        checkpoint_at_end=args.checkpoint_at_end,
        storage_path=args.storage_path,
    )
    if args.env is not None:
        overrides.config["env"] = args.env
    if args.file is not None:
        if args.algo is not None:
            raise CLIError("Give either -f FILE or --algo, not both.")
        experiments = load_experiments(resolve_experiment_file(args.file), overrides)
    elif args.algo is not None:
        if args.env is None:
            raise CLIError("--algo needs --env (or use -f FILE.yaml).")
        name = f"{args.algo}_{args.env}"
        experiments = [build_experiment(name, {"run": args.algo}, overrides)]
    else:
        raise CLIError("train needs -f FILE.yaml (or --algo NAME --env ENV).")

    # Tune's classic table reporter (with our columns) instead of its newer output engine.
    previous = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = previous or "0"
    started, address = init_ray(args)
    try:
        on_cluster = bool(address) or not started
        check_trials_fit(experiments, on_cluster=on_cluster)
        failed = sum(run_experiment(e, args.verbose) for e in experiments)
    finally:
        if started:
            import ray

            ray.shutdown()
        if previous is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
    if failed:
        print(f"{PROG}: {failed} trial(s) failed; see error.txt in their directories.")
        return EXIT_FAILED
    return EXIT_OK


# --- evaluate ------------------------------------------------------------------------------------


def cmd_evaluate(args: argparse.Namespace) -> int:
    """``evaluate``: meta-tests a checkpoint; prints the table, writes JSON and PNG.

    SIGTERM interrupts it as Ctrl-C does (:func:`sigterm_interrupts`).
    """
    with sigterm_interrupts():
        return _evaluate(args)


def _evaluate(args: argparse.Namespace) -> int:
    from rllib_marl_meta.evaluation import meta_test_algorithm
    from rllib_marl_meta.evaluation.report import write_report

    checkpoint, _ = resolve_checkpoint(args.checkpoint)  # Fails early on a wrong checkpoint.
    output_dir = Path(args.output_dir) if args.output_dir else Path("meta_test")
    started, _ = init_ray(args)
    try:
        from ray.rllib.algorithms.algorithm import Algorithm

        algo = Algorithm.from_checkpoint(str(checkpoint))
        try:
            result = meta_test_algorithm(
                algo, num_tasks=args.num_tasks, seed=args.seed, steps=args.steps
            )
        finally:
            algo.stop()
    finally:
        if started:
            import ray

            ray.shutdown()
    table, json_path, png_path = write_report(result, output_dir, checkpoint=str(checkpoint))
    print(table)
    print(f"Saved {json_path} and {png_path}")
    return EXIT_OK


# --- list ----------------------------------------------------------------------------------------


def tuned_example_rows() -> list[tuple[str, str, str, str]]:
    """(file, experiment, run, env) for every YAML under ``tuned_examples/``."""
    examples = tuned_examples_dir()
    rows = []
    if examples is None:
        return rows
    for path in sorted(examples.rglob("*.yaml")):
        rel = path.relative_to(examples).as_posix()
        try:
            data = load_yaml_file(path)
        except ExperimentError as exc:
            rows.append((rel, "?", "?", f"(unreadable: {exc})"))
            continue
        for name, spec in data.items():
            spec = spec if isinstance(spec, dict) else {}
            env = spec.get("env") or (spec.get("config") or {}).get("env", "?")
            rows.append((rel, str(name), str(spec.get("run", "?")), str(env)))
    return rows


def _table(rows: list[Sequence[str]], indent: str = "  ") -> str:
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "\n".join(
        indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows
    )


def cmd_list(args: argparse.Namespace) -> int:
    """``list``: built-in envs, algorithms and tuned examples (``--json`` for machines)."""
    from rllib_marl_meta import ALGORITHMS
    from rllib_marl_meta.envs import BUILTIN_ENVS

    envs = [
        {
            "name": name,
            "kind": "multi-agent" if env.multi_agent else "single-agent",
            # The default config's task space, from the env itself (`TaskSpace.describe()`).
            "task_space": env.describe() if env.installed else "?",
            "extra": env.extra,
            "installed": env.installed,
        }
        for name, env in BUILTIN_ENVS.items()
    ]
    algorithms = [{"name": name, "class": path} for name, path in ALGORITHMS.items()]
    examples = [
        {"file": f, "experiment": e, "run": r, "env": env} for f, e, r, env in tuned_example_rows()
    ]
    if args.json:
        print(json.dumps({"envs": envs, "algorithms": algorithms, "tuned_examples": examples}))
        return EXIT_OK
    env_rows = [("name", "kind", "task space", "needs")]
    for e in envs:
        needs = "-" if e["extra"] is None else f"[{e['extra']}]"
        if e["extra"] is not None and not e["installed"]:
            needs += " (not installed)"
        env_rows.append((e["name"], e["kind"], e["task_space"], needs))
    print("Built-in envs (task distributions, registered with Tune):")
    print(_table(env_rows))
    print("\nAlgorithms (run: NAME):")
    print(_table([(a["name"], a["class"]) for a in algorithms]))
    print("  and RLlib's own (PPO, APPO, ...) for baselines")
    print("\nTuned examples (train -f FILE, FILE relative to tuned_examples/ works too):")
    if examples:
        rows = [("file", "experiment", "run", "env")]
        rows += [(x["file"], x["experiment"], x["run"], x["env"]) for x in examples]
        print(_table(rows))
    else:
        print("  (none: tuned_examples/ ships with the source repository)")
    return EXIT_OK


# --- Parser --------------------------------------------------------------------------------------


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {minimum}, got {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The argument parser of the command line (``prog`` names it in messages)."""
    # -v may stand before or after the subcommand. Two dests, as a subcommand's default
    # would overwrite the count given before it; `main` adds them up.
    verbose = {
        "action": "count",
        "default": 0,
        "help": "more output; show tracebacks of errors (-vv: Tune's trial details)",
    }
    top = argparse.ArgumentParser(add_help=False)
    top.add_argument("-v", "--verbose", dest="verbose_top", **verbose)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", **verbose)
    ray_opts = argparse.ArgumentParser(add_help=False)
    group = ray_opts.add_argument_group("Ray")
    group.add_argument(
        "--ray-address",
        help="connect to this Ray cluster (ray.init(address=...)); default: RAY_ADDRESS or a "
        "new local instance",
    )
    group.add_argument(
        "--num-cpus", type=_int_at_least(1), help="CPUs of the local Ray instance (default: all)"
    )
    group.add_argument(
        "--dashboard",
        action="store_true",
        help="start Ray's dashboard with the local instance (needs ray[default])",
    )

    parser = argparse.ArgumentParser(
        prog=prog,
        description="Meta-RL (MAML, RL²) on Ray RLlib: train from YAML, meta-test checkpoints.",
        parents=[top],
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    train = sub.add_parser(
        "train",
        parents=[common, ray_opts],
        help="run the experiments of a YAML file with Ray Tune",
        description="Run the experiments of an RLlib-style YAML file "
        "({name: {env, run, stop, config}}) with Ray Tune. CLI settings take precedence over "
        "the file's.",
    )
    train.add_argument("-f", "--file", "--config-file", dest="file", help="experiment YAML file")
    train.add_argument("--algo", "--run", dest="algo", help="algorithm, instead of -f")
    train.add_argument("--env", help="env name (overrides the file's)")
    train.add_argument(
        "--config",
        help="JSON/YAML mapping merged deep over the file's config, e.g. "
        '\'{"meta_batch_size": 10, "env_config": {"horizon": 50}}\'',
    )
    train.add_argument(
        "--stop",
        help="JSON/YAML mapping merged over the file's stop criteria (a null value removes "
        "one; at least one finite criterion must remain), e.g. '{\"training_iteration\": 100}'",
    )
    train.add_argument("--num-samples", type=_int_at_least(1), help="Tune samples per experiment")
    train.add_argument("--storage-path", help="where Tune writes results (default ~/ray_results)")
    train.add_argument(
        "--checkpoint-freq", type=_int_at_least(0), help="checkpoint every N iterations"
    )
    train.add_argument(
        "--checkpoint-at-end",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="checkpoint when a trial ends (default: on)",
    )
    train.set_defaults(func=cmd_train)

    evaluate = sub.add_parser(
        "evaluate",
        parents=[common, ray_opts],
        help="meta-test a MAML or RL² checkpoint on new tasks",
        description="Adapt a trained meta-learner to new tasks; print mean ± standard error "
        "over tasks before and after each adaptation step (MAML) or per inner episode (RL²); "
        "write meta_test.json and meta_test.png.",
    )
    evaluate.add_argument("checkpoint", help="algorithm checkpoint or Tune trial directory")
    evaluate.add_argument("--num-tasks", type=_int_at_least(1), default=20, help="new tasks (20)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the task draw (0)")
    evaluate.add_argument(
        "--steps",
        type=_int_at_least(1),
        help="MAML: adaptation steps; RL²: inner episodes per trial (default: as trained)",
    )
    evaluate.add_argument(
        "--output-dir", help="where meta_test.json and meta_test.png go (./meta_test)"
    )
    evaluate.set_defaults(func=cmd_evaluate)

    lister = sub.add_parser(
        "list", parents=[common], help="built-in envs, algorithms and tuned examples"
    )
    lister.add_argument("--json", action="store_true", help="machine-readable output")
    lister.set_defaults(func=cmd_list)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Runs the command line; returns the exit code.

    0 ok, 1 failed run, 2 bad input, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog)
    args = parser.parse_args(argv)  # Exits with 2 and a usage line on bad options.
    args.verbose += args.verbose_top
    try:
        return args.func(args)
    except ExperimentError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Terminated:
        print(f"{prog}: terminated by SIGTERM", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - a run that failed, not bad input.
        if args.verbose:
            traceback.print_exc()
        message = " ".join(str(exc).split()) or type(exc).__name__
        hint = "" if args.verbose else " (-v shows the traceback)"
        print(f"{prog}: {type(exc).__name__}: {message[:500]}{hint}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
