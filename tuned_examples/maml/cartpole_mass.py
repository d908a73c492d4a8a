"""MAML on CartPole with random cart and pole masses (masscart ~ U[0.5, 2.0],
masspole ~ U[0.05, 0.2]); episodes capped at 200 steps.

RLlib's tuned-example form of `cartpole_mass.yaml` (the same settings, kept equal by
`tests/cli/test_tuned_examples.py`), run by RLlib's example-script runner:

    python tuned_examples/maml/cartpole_mass.py --help
"""

from ray.rllib.examples.utils import (
    add_rllib_example_script_args,
    run_rllib_example_script_experiment,
)

from rllib_marl_meta import MAMLConfig

# The YAML's stop criteria: this result key's target (if any), or the env-step cap.
TARGET_METRIC = "episode_return_mean_adapt_1"
parser = add_rllib_example_script_args(
    default_reward=190.0, default_timesteps=5_000_000, default_iters=1_000_000
)
parser.set_defaults(algo="MAML")

config = (
    MAMLConfig()
    .environment("CartPoleMass", env_config={"max_episode_steps": 200})
    .env_runners(num_env_runners=1)
    .rl_module(model_config={"fcnet_hiddens": [64, 64]})
    .debugging(seed=0)
    .training(
        meta_batch_size=20,
        episodes_per_task=10,
        inner_adaptation_steps=1,
        inner_lr=0.1,
        lr=0.001,
        maml_optimizer_steps=5,
        clip_param=0.3,
        kl_coeff=0.0005,
        kl_target=0.01,
        gamma=0.99,
        lambda_=1.0,
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
