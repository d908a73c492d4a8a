"""MAML on 2D point navigation (Finn et al., 2017, section 5.3): the goal of each task is drawn
uniformly from [-0.5, 0.5]^2, reward is minus the distance to the goal, horizon 100.
Settings follow ProMP / old RLlib MAML: 20 tasks x 20 episodes per step, inner_lr 0.1,
outer lr 1e-3, 5 optimizer steps, clip 0.3, KL coefficient 5e-4 with target 0.01, (64, 64).

RLlib's tuned-example form of `point_navigation.yaml` (the same settings, kept equal by
`tests/cli/test_tuned_examples.py`), run by RLlib's example-script runner:

    python tuned_examples/maml/point_navigation.py --help
"""

from ray.rllib.examples.utils import (
    add_rllib_example_script_args,
    run_rllib_example_script_experiment,
)

from rllib_marl_meta import MAMLConfig

# The YAML's stop criteria: this result key's target (if any), or the env-step cap.
TARGET_METRIC = "episode_return_mean_adapt_1"
parser = add_rllib_example_script_args(
    default_reward=-10.0, default_timesteps=5_000_000, default_iters=1_000_000
)
parser.set_defaults(algo="MAML")

config = (
    MAMLConfig()
    .environment("PointNavigation2D", env_config={"horizon": 100})
    .env_runners(num_env_runners=1)
    .rl_module(model_config={"fcnet_hiddens": [64, 64], "fcnet_activation": "tanh"})
    .debugging(seed=0)
    .training(
        meta_batch_size=20,
        episodes_per_task=20,
        inner_adaptation_steps=1,
        inner_lr=0.1,
        lr=0.001,
        maml_optimizer_steps=5,
        meta_gradient="second_order",
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
