"""MAML on HalfCheetah with a random target velocity (U[0, 2]), horizon 100 as in ProMP
(the MAML paper used 200). ProMP / old RLlib settings: 40 tasks x 20 episodes per step.
Needs the mujoco extra: pip install -c constraints.txt -e ".[mujoco]"

RLlib's tuned-example form of `half_cheetah_velocity.yaml` (the same settings, kept equal by
`tests/cli/test_tuned_examples.py`), run by RLlib's example-script runner:

    python tuned_examples/maml/half_cheetah_velocity.py --help
"""

from ray.rllib.examples.utils import (
    add_rllib_example_script_args,
    run_rllib_example_script_experiment,
)

from rllib_marl_meta import MAMLConfig

# The YAML's stop criteria: this result key's target (if any), or the env-step cap.
TARGET_METRIC = "episode_return_mean_adapt_1"
parser = add_rllib_example_script_args(
    default_reward=-60.0, default_timesteps=30_000_000, default_iters=1_000_000
)
parser.set_defaults(algo="MAML")

config = (
    MAMLConfig()
    .environment("HalfCheetahVelocity", env_config={"horizon": 100})
    .env_runners(num_env_runners=4)
    .rl_module(model_config={"fcnet_hiddens": [64, 64], "fcnet_activation": "tanh"})
    .debugging(seed=0)
    .training(
        meta_batch_size=40,
        episodes_per_task=20,
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
