"""Multi-agent RL² on CooperativeNavigation: 2 agents must cover 2 landmarks whose layout (and
the agents' top speed) is the task. A trial is 3 episodes of 20 steps of one layout; each
agent's GRU carries what it learned about the layout across them. One policy shared by both
agents (parameter sharing). Results hold trial_episode_{i}_return_mean (team, summed over
agents) and agent_trial_episode_{i}_return_mean/<agent> under env_runners/.

RLlib's tuned-example form of `cooperative_navigation.yaml` (the same settings, kept equal by
`tests/cli/test_tuned_examples.py`), run by RLlib's example-script runner:

    python tuned_examples/rl2/cooperative_navigation.py --help
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
    .environment(
        "CooperativeNavigation", env_config={"num_agents": 2, "horizon": 20, "spawn_range": 0.1}
    )
    .env_runners(num_env_runners=1, num_envs_per_env_runner=8)
    .multi_agent(
        policies={"shared"},
        policy_mapping_fn=lambda agent_id, episode, **kwargs: "shared",
    )
    .debugging(seed=0)
    .training(
        episodes_per_trial=3,
        rnn_cell="gru",
        cell_size=64,
        max_seq_len=60,
        lr=0.0003,
        gamma=0.99,
        lambda_=0.95,
        clip_param=0.2,
        num_epochs=10,
        train_batch_size_per_learner=6000,
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
