"""RL² on the MAML paper's 2D navigation: a hidden goal ~ U[-0.5, 0.5]^2, reward minus the
distance to it, 100-step episodes. A trial is 2 episodes of one goal, so the policy can find
the goal in episode 1 and go straight to it in episode 2 (env_runners/trial_adaptation_mean
> 0). Trials of 200 steps are cut into 100-step sequences for backprop through time; the
state at each cut comes from sampling.

RLlib's tuned-example form of `point_navigation.yaml` (the same settings, kept equal by
`tests/cli/test_tuned_examples.py`), run by RLlib's example-script runner:

    python tuned_examples/rl2/point_navigation.py --help
"""

from ray.rllib.examples.utils import (
    add_rllib_example_script_args,
    run_rllib_example_script_experiment,
)

from rllib_marl_meta import RL2Config

# The YAML's stop criteria: this result key's target (if any), or the env-step cap.
TARGET_METRIC = None
parser = add_rllib_example_script_args(
    default_reward=0.0, default_timesteps=5_000_000, default_iters=1_000_000
)
parser.set_defaults(algo="RL2")

config = (
    RL2Config()
    .environment("PointNavigation2D", env_config={"horizon": 100})
    .env_runners(num_env_runners=1, num_envs_per_env_runner=10)
    .debugging(seed=0)
    .training(
        episodes_per_trial=2,
        rnn_cell="gru",
        cell_size=64,
        max_seq_len=100,
        lr=0.0003,
        gamma=0.99,
        lambda_=0.95,
        clip_param=0.2,
        num_epochs=10,
        train_batch_size_per_learner=8000,
        minibatch_size=1000,
    )
)

if __name__ == "__main__":
    args = parser.parse_args()
    stop = {
        "env_runners/num_env_steps_sampled_lifetime": args.stop_timesteps,
        "training_iteration": args.stop_iters,
    }
    if TARGET_METRIC is not None:
        stop[TARGET_METRIC] = args.stop_reward
    run_rllib_example_script_experiment(
        config,
        args,
        stop=stop,
        success_metric=None if TARGET_METRIC is None else {TARGET_METRIC: args.stop_reward},
    )
