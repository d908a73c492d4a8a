"""The ``rllib-marl-meta`` command line (also ``python -m rllib_marl_meta``).

``train -f FILE.yaml`` runs the experiments of an RLlib-style YAML file (see
:mod:`rllib_marl_meta.experiments`) with Ray Tune; ``evaluate CHECKPOINT`` meta-tests a
meta-learner's checkpoint and writes a table, JSON and a plot; ``list`` shows built-in envs,
algorithms and tuned examples.

Exit codes: 0 ok, 1 failed run, 2 bad input (one line on stderr, before Ray starts where possible;
``-v`` adds the traceback), 130 Ctrl-C, 143 SIGTERM. SIGTERM unwinds like Ctrl-C, so the Ray
instance the command started is shut down with its trials; a second SIGTERM ends it at once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import numbers
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
from unittest import mock

from ray.tune.utils.util import unflattened_lookup

from rllib_marl_meta.checkpoints import CheckpointError, check_checkpoint_files
from rllib_marl_meta.console import quiet_rllib_noise
from rllib_marl_meta.experiments import (
    Experiment,
    ExperimentError,
    Overrides,
    build_experiment,
    load_yaml_file,
    parse_override,
)
from rllib_marl_meta.meta_learner import is_meta_learner

PROG = "rllib-marl-meta"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130, as a shell reports a process ended by Ctrl-C.
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143
TUNED_EXAMPLES = Path(__file__).resolve().parent.parent / "tuned_examples"  # In a checkout.


class CLIError(ExperimentError):
    """Bad command-line input that is not about an experiment file (exit code 2)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwinds as Ctrl-C does (``finally`` blocks shut Ray down)."""


class SigtermRecord:
    """Whether SIGTERM arrived while :func:`sigterm_interrupts` was active.

    The exception alone cannot say so: a signal that lands while the main thread waits in
    ``ray.get`` reaches Python through Ray's core worker, which replaces :class:`Terminated`
    with a plain ``KeyboardInterrupt``.
    """

    received: bool = False


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[SigtermRecord]:
    """While the block runs, SIGTERM raises :class:`Terminated` in the main thread.

    Python's default SIGTERM action skips ``finally`` blocks, which would leave the Ray instance
    and its trials running. The first SIGTERM puts the previous handler back, so a second one
    acts as before; so does the end of the block. Yields a record of whether SIGTERM arrived.
    """
    record = SigtermRecord()
    if threading.current_thread() is not threading.main_thread():
        yield record
        return
    previous = signal.getsignal(signal.SIGTERM)
    restore = signal.SIG_DFL if previous is None else previous  # None: set outside Python.

    def on_sigterm(signum: int, frame: Any) -> None:
        record.received = True
        signal.signal(signal.SIGTERM, restore)
        raise Terminated(f"received signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield record
    finally:
        signal.signal(signal.SIGTERM, restore)


def resolve_experiment_file(name: str) -> Path:
    """A path, or a path relative to ``tuned_examples/`` with or without ``.yaml``."""
    path = Path(name)
    if not path.exists() and not path.is_absolute():
        for candidate in (TUNED_EXAMPLES / path, TUNED_EXAMPLES / f"{name}.yaml"):
            if candidate.is_file():
                return candidate
    return path  # Missing: the loader reports it.


def resolve_checkpoint(path_text: str) -> tuple[Path, str]:
    """A meta-learner's algorithm checkpoint (or a Tune trial directory's newest one) and the
    algorithm's name. Every file is read once first, so a truncated one is named here."""
    path = Path(path_text).expanduser().resolve()  # pyarrow rejects relative paths.
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
    if not is_meta_learner(algo_cls):
        raise CLIError(
            f"Checkpoint {path} is from {getattr(algo_cls, '__name__', algo_cls)}, not a "
            "meta-learner: evaluate needs a MAML or RL2 checkpoint."
        )
    return path, algo_cls.__name__


# --- Ray -----------------------------------------------------------------------------------------


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fails fast on a ``host:port`` nothing listens on (``ray.init`` retries for minutes)."""
    if address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host.strip("[]") or not port.isdigit():
        raise CLIError(
            "--ray-address (or RAY_ADDRESS) must be HOST:PORT (the head's GCS port, e.g. "
            f"127.0.0.1:6379), ray://HOST:PORT or auto; got {address!r}."
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise CLIError(f"Cannot reach the Ray cluster at {address}: {reason}.") from None


def init_ray(args: argparse.Namespace) -> tuple[bool, str | None]:
    """Connects to ``--ray-address`` (or ``RAY_ADDRESS``) or starts a local instance.

    Returns whether this call started Ray, and the cluster address (None: local).
    """
    import ray

    quiet_rllib_noise()
    address = args.ray_address or os.environ.get("RAY_ADDRESS") or None
    if address:
        check_reachable(address)
    if ray.is_initialized():
        return False, address
    if address and args.num_cpus is not None:
        print(f"{PROG}: warning: --num-cpus is ignored on a cluster.", file=sys.stderr)
    sigterm = signal.getsignal(signal.SIGTERM)
    if address:
        kwargs: dict[str, Any] = {"address": address}
    else:  # Worker processes drop RLlib's noise too; a cluster job keeps its own runtime env.
        hook = "rllib_marl_meta.console.quiet_rllib_noise"
        kwargs = {"num_cpus": args.num_cpus, "include_dashboard": args.dashboard}
        kwargs["runtime_env"] = {"worker_process_setup_hook": hook}
    try:
        ray.init(**kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        if not address:
            raise
        message = " ".join(str(exc).split())
        raise CLIError(f"Cannot connect to the Ray cluster at {address!r}: {message}") from exc
    if sigterm is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, sigterm)  # ray.init's handler would exit(15), no clean-up.
    return True, address


@contextlib.contextmanager
def ray_running(args: argparse.Namespace) -> Iterator[bool]:
    """Ray, as :func:`init_ray` finds or starts it, for the block; yields whether it may grow
    (a cluster, or an instance started by someone else). Shuts down what it started."""
    started, address = init_ray(args)
    try:
        yield bool(address) or not started
    finally:
        if started:
            import ray

            ray.shutdown()


# --- train ---------------------------------------------------------------------------------------


def check_trials_fit(experiments: Sequence[Experiment], on_cluster: bool) -> None:
    """Fails early when one trial needs more CPUs than Ray has (Tune would wait forever).

    On a cluster this only warns: an autoscaler may add nodes.
    """
    import ray

    available = float(ray.cluster_resources().get("CPU", 0.0))
    for experiment in experiments:
        needed = experiment.cpus_per_trial()
        if needed > available:
            message = (
                f"experiment {experiment.name!r}: one trial needs {needed:g} CPUs (1 for the "
                f"algorithm, 1 per EnvRunner and remote Learner) but Ray has {available:g}. "
                f"Lower `num_env_runners` (e.g. --config '{{\"num_env_runners\": 1}}')"
            )
            if not on_cluster:
                raise CLIError(f"{message}, or start Ray with more CPUs (--num-cpus).")
            print(f"{PROG}: warning: {message}, or make sure the cluster can scale up.")


def progress_columns(experiment: Experiment) -> dict[str, str]:
    """Result keys and headers for Tune's progress table: iterations, env steps and time, then
    a meta-learner's own ``progress_columns`` or RLlib's episode return."""
    columns = {
        "training_iteration": "iter",
        "env_runners/num_env_steps_sampled_lifetime": "env steps",
        "time_total_s": "time (s)",
    }
    if not is_meta_learner(experiment.algo_class):
        return columns | {"env_runners/episode_return_mean": "return"}
    configs = experiment.configs()

    def max_setting(key: str, default: int) -> int:  # The largest value over the search space.
        values = (getattr(config, key, default) for config in configs)
        ints = [int(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        return max(ints, default=default)

    return columns | experiment.algo_class.progress_columns(max_setting)


def _format(value: Any) -> str:
    real = isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)
    return f"{value:.4g}" if real else str(value)


def _lookup(result: dict[str, Any], key: str) -> Any:
    return unflattened_lookup(key, result, default=None)


def run_experiment(experiment: Experiment, verbose: int) -> int:
    """Runs one experiment with Tune; prints a summary; returns the number of failed trials."""
    from ray import tune

    columns = progress_columns(experiment)
    storage = experiment.storage_path
    if storage is not None and "://" not in storage:
        storage = str(Path(storage).expanduser().resolve())
    results = tune.Tuner(
        experiment.run,
        param_space=experiment.param_space,
        tune_config=tune.TuneConfig(num_samples=experiment.num_samples),
        run_config=tune.RunConfig(
            name=experiment.name,
            stop=experiment.stop,
            storage_path=storage,
            checkpoint_config=tune.CheckpointConfig(
                checkpoint_frequency=experiment.checkpoint_freq,
                checkpoint_at_end=experiment.checkpoint_at_end,
            ),
            progress_reporter=tune.CLIReporter(
                metric_columns=columns,
                max_report_frequency=10 if verbose else 30,
                sort_by_metric=False,
            ),
            verbose=1 + min(verbose, 2),
        ),
    ).fit()
    print(f"\n== {experiment.name} ({experiment.run} on {experiment.env}): {len(results)} trial(s)")
    failed = 0
    for result in results:
        if result.error is not None:
            failed += 1
            lines = str(result.error).strip().splitlines()
            print(f"  FAILED {result.path}: {lines[-1] if lines else type(result.error).__name__}")
            continue
        values = {header: _lookup(result.metrics or {}, key) for key, header in columns.items()}
        shown = ", ".join(f"{h}={_format(v)}" for h, v in values.items() if v is not None)
        print(f"  {result.path}\n    {shown}")
        if result.checkpoint is not None:
            print(f"    checkpoint: {result.checkpoint.path}")
            if is_meta_learner(experiment.algo_class):
                print(f"    meta-test:  {PROG} evaluate {result.checkpoint.path}")
    if results.experiment_path:
        print(f"  results (TensorBoard, CSV, JSON): {results.experiment_path}")
    return failed


def _train(args: argparse.Namespace) -> int:
    """``train``: checks every experiment first, then runs them one after the other."""
    if args.file is not None and args.algo is not None:
        raise CLIError("Give either -f FILE or --algo, not both.")
    if args.file is None and args.algo is None:
        raise CLIError("train needs -f FILE.yaml (or --algo NAME --env ENV).")
    if args.file is None and args.env is None:
        raise CLIError("--algo needs --env (or use -f FILE.yaml).")
    settings = ("num_samples", "checkpoint_freq", "checkpoint_at_end", "storage_path")
    overrides = Overrides(
        config=parse_override(args.config, "--config") | ({"env": args.env} if args.env else {}),
        stop=parse_override(args.stop, "--stop"),
        **{key: getattr(args, key) for key in settings},
    )
    if args.file is not None:
        specs = load_yaml_file(resolve_experiment_file(args.file))
    else:
        specs = {f"{args.algo}_{args.env}": {"run": args.algo}}
    experiments = [build_experiment(name, spec, overrides) for name, spec in specs.items()]
    # Tune's classic table reporter (with our columns) instead of its newer output engine.
    new_output = os.environ.get("RAY_AIR_NEW_OUTPUT", "0")
    with mock.patch.dict(os.environ, RAY_AIR_NEW_OUTPUT=new_output), ray_running(args) as grows:
        check_trials_fit(experiments, on_cluster=grows)
        failed = sum(run_experiment(e, args.verbose) for e in experiments)
    if failed:
        print(f"{PROG}: {failed} trial(s) failed; see error.txt in their directories.")
    return EXIT_FAILED if failed else EXIT_OK


def _evaluate(args: argparse.Namespace) -> int:
    """``evaluate``: meta-tests a checkpoint; prints the table, writes JSON and PNG."""
    from ray.rllib.algorithms.algorithm import Algorithm

    from rllib_marl_meta.evaluation.report import write_report

    checkpoint, _ = resolve_checkpoint(args.checkpoint)  # Fails before Ray starts.
    with ray_running(args):
        algo = Algorithm.from_checkpoint(str(checkpoint))
        try:
            result = algo.meta_test(num_tasks=args.num_tasks, seed=args.seed, steps=args.steps)
        finally:
            algo.stop()
    output_dir = Path(args.output_dir or "meta_test")
    table, json_path, png_path = write_report(result, output_dir, checkpoint=str(checkpoint))
    print(f"{table}\nSaved {json_path} and {png_path}")
    return EXIT_OK


# --- list ----------------------------------------------------------------------------------------


def tuned_example_rows() -> list[tuple[str, str, str, str]]:
    """(file, experiment, run, env) for every YAML under ``tuned_examples/``."""
    rows = []
    for path in sorted(TUNED_EXAMPLES.rglob("*.yaml")):
        rel = path.relative_to(TUNED_EXAMPLES).as_posix()
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


def _table(header: Sequence[str], rows: list[Sequence[str]]) -> str:
    rows = [header, *rows] if header else rows
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)
    return "\n".join(f"  {line}" for line in lines)


def cmd_list(args: argparse.Namespace) -> int:
    """``list``: built-in envs, algorithms and tuned examples (``--json`` for machines)."""
    from rllib_marl_meta import ALGORITHMS
    from rllib_marl_meta.envs import BUILTIN_ENVS

    envs = [
        {
            "name": name,
            "kind": "multi-agent" if env.multi_agent else "single-agent",
            "task_space": env.describe() if env.installed else "?",  # The default config's.
            "extra": env.extra,
            "installed": env.installed,
        }
        for name, env in BUILTIN_ENVS.items()
    ]
    algorithms = [{"name": name, "class": path} for name, path in ALGORITHMS.items()]
    examples = [dict(zip(("file", "experiment", "run", "env"), r)) for r in tuned_example_rows()]
    if args.json:
        print(json.dumps({"envs": envs, "algorithms": algorithms, "tuned_examples": examples}))
        return EXIT_OK
    env_rows = []
    for e in envs:
        needs = "-" if e["extra"] is None else f"[{e['extra']}]"
        needs += "" if e["installed"] else " (not installed)"
        env_rows.append((e["name"], e["kind"], e["task_space"], needs))
    print("Built-in envs (task distributions, registered with Tune):")
    print(_table(("name", "kind", "task space", "needs"), env_rows))
    print("\nAlgorithms (run: NAME):")
    print(_table((), [(a["name"], a["class"]) for a in algorithms]))
    print("  and RLlib's own (PPO, APPO, ...) for baselines")
    print("\nTuned examples (train -f FILE, FILE relative to tuned_examples/ works too):")
    rows = [tuple(x.values()) for x in examples]
    header = ("file", "experiment", "run", "env")
    print(_table(header, rows) if rows else "  (none: tuned_examples/ ships with the source)")
    return EXIT_OK


# --- Parser --------------------------------------------------------------------------------------


def _int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The argument parser of the command line (``prog`` names it in messages)."""
    # -v may stand before or after the subcommand: two dests (a subcommand's default would
    # overwrite the count given before it), which `main` adds up.
    verbose = {
        "action": "count",
        "default": 0,
        "help": "more output, error tracebacks (-vv: Tune's trial details)",
    }
    top = argparse.ArgumentParser(add_help=False)
    top.add_argument("-v", "--verbose", dest="verbose_top", **verbose)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", **verbose)
    ray_opts = argparse.ArgumentParser(add_help=False)
    group = ray_opts.add_argument_group("Ray")
    group.add_argument("--ray-address", help="Ray cluster to use (default: RAY_ADDRESS or local)")
    group.add_argument("--num-cpus", type=_int_at_least(1), help="CPUs of a local Ray (all)")
    group.add_argument("--dashboard", action="store_true", help="start Ray's dashboard locally")

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
        description="Run the experiments of an RLlib-style YAML file ({name: {env, run, stop, "
        "config}}) with Ray Tune. Command-line settings take precedence over the file's.",
    )
    train.add_argument("-f", "--file", "--config-file", dest="file", help="experiment YAML file")
    train.add_argument("--algo", "--run", dest="algo", help="algorithm, instead of -f")
    train.add_argument("--env", help="env name (overrides the file's)")
    train.add_argument("--config", help="JSON/YAML mapping merged deep over the file's config")
    train.add_argument(
        "--stop", help="JSON/YAML mapping merged over the file's stop criteria; null removes one"
    )
    train.add_argument("--num-samples", type=_int_at_least(1), help="Tune samples per experiment")
    train.add_argument("--storage-path", help="where Tune writes results (~/ray_results)")
    train.add_argument(
        "--checkpoint-freq", type=_int_at_least(0), help="checkpoint every N iterations (0: never)"
    )
    train.add_argument(
        "--checkpoint-at-end",
        action=argparse.BooleanOptionalAction,
        help="checkpoint when a trial ends (default: on)",
    )
    train.set_defaults(func=_train)

    evaluate = sub.add_parser(
        "evaluate",
        parents=[common, ray_opts],
        help="meta-test a MAML or RL² checkpoint on new tasks",
        description="Adapt a trained meta-learner to new tasks; print mean ± standard error over "
        "tasks along the adaptation curve; write meta_test.json and meta_test.png.",
    )
    evaluate.add_argument("checkpoint", help="algorithm checkpoint or Tune trial directory")
    evaluate.add_argument("--num-tasks", type=_int_at_least(1), default=20, help="new tasks (20)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the task draw (0)")
    evaluate.add_argument(
        "--steps", type=_int_at_least(1), help="MAML: adaptation steps; RL²: inner episodes"
    )
    evaluate.add_argument("--output-dir", help="for meta_test.json and .png (./meta_test)")
    evaluate.set_defaults(func=_evaluate)

    lister = sub.add_parser("list", parents=[common], help="envs, algorithms, tuned examples")
    lister.add_argument("--json", action="store_true", help="machine-readable output")
    lister.set_defaults(func=cmd_list)
    return parser


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Runs the command line; returns the exit code (see the module docstring)."""
    args = build_parser(prog).parse_args(sys.argv[1:] if argv is None else list(argv))
    args.verbose += args.verbose_top
    sigterm = SigtermRecord()
    try:
        with sigterm_interrupts() as sigterm:
            return args.func(args)
    except ExperimentError as exc:
        if args.verbose:
            traceback.print_exc()
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        if sigterm.received:  # Also when Ray turned `Terminated` into a plain interrupt.
            print(f"{prog}: terminated by SIGTERM", file=sys.stderr)
            return EXIT_TERMINATED
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
