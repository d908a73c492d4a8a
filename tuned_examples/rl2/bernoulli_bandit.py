"""RL² on the RL² paper's multi-armed bandits (Duan et al., 2016, section 5.1): k = 5 Bernoulli
arms with success probabilities p ~ U[0, 1]^5, n = 10 pulls per trial (a trial is 10 one-pull
episodes of one task; the GRU state carries across them). A uniformly random policy earns
5.0 per trial, the Gittins index about 6.6, always pulling the best arm about 8.3.
garage RL²-PPO settings (GRU 64, gamma 0.99, lambda 0.95, clip 0.2, 10 epochs) with lr 1e-3.
On 2 CPUs this reaches a trial return of about 6.4 after 80,000 pulls (about a minute).

RLlib's tuned-example form of `bernoulli_bandit.yaml` (the same settings, kept equal by
`tests/cli/test_tuned_examples.py`), run by RLlib's example-script runner:

    python tuned_examples/rl2/bernoulli_bandit.py --help
"""

from ray.rllib.examples.utils import (
    add_rllib_example_script_args,
    run_rllib_example_script_experiment,
)

from rllib_marl_meta import RL2Config

# The YAML's stop criteria: this result key's target (if any), or the env-step cap.
TARGET_METRIC = "env_runners/episode_return_mean"
parser = add_rllib_example_script_args(
    default_reward=6.5, default_timesteps=2_000_000, default_iters=1_000_000
)
parser.set_defaults(algo="RL2")

config = (
    RL2Config()
    .environment("BernoulliBandit", env_config={"num_arms": 5, "pulls_per_episode": 1})
    .env_runners(num_env_runners=0, num_envs_per_env_runner=10)
    .debugging(seed=0)
    .training(
        episodes_per_trial=10,
        rnn_cell="gru",
        cell_size=64,
        max_seq_len=10,
        lr=0.001,
        gamma=0.99,
        lambda_=0.95,
        clip_param=0.2,
        num_epochs=10,
        train_batch_size_per_learner=2000,
        minibatch_size=500,
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
