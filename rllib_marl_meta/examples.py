"""What the Python tuned examples share: RLlib's example-script options and runner.

Each file under ``tuned_examples/`` builds its config and calls :func:`run_tuned_example`,
which runs it with ``ray.rllib.examples.utils.run_rllib_example_script_experiment`` (RLlib
2.60's own tuned-example runner and options: ``--num-env-runners``, ``--stop-timesteps``,
``--no-tune``, ``--as-test``, ...). The stop criteria are the YAML twin's: a target value of one
result key (if any) and an env-step cap.
"""

from __future__ import annotations

import argparse
from typing import Any

CAP = "env_runners/num_env_steps_sampled_lifetime"


def tuned_example_parser(
    algo: str, *, timesteps: int, target_metric: str | None = None, target: float = 0.0
) -> argparse.ArgumentParser:
    """RLlib's example-script parser with this example's algorithm and stop criteria."""
    from ray.rllib.examples.utils import add_rllib_example_script_args

    parser = add_rllib_example_script_args(
        default_reward=target, default_timesteps=timesteps, default_iters=1_000_000
    )
    parser.set_defaults(algo=algo, target_metric=target_metric)
    return parser


def run_tuned_example(config: Any, parser: argparse.ArgumentParser, argv: list[str] | None = None):
    """Parses the command line and runs ``config`` with RLlib's example-script runner."""
    from ray.rllib.examples.utils import run_rllib_example_script_experiment

    args = parser.parse_args(argv)
    stop: dict[str, Any] = {CAP: args.stop_timesteps, "training_iteration": args.stop_iters}
    success = None
    if args.target_metric is not None:
        stop[args.target_metric] = args.stop_reward
        success = {args.target_metric: args.stop_reward}
    return run_rllib_example_script_experiment(config, args, stop=stop, success_metric=success)
