"""Multi-agent RL² on CooperativeNavigation: 2 agents must cover 2 landmarks whose layout (and
the agents' top speed) is the task. A trial is 3 episodes of 20 steps of one layout; each
agent's GRU carries what it learned about the layout across them. One policy shared by both
agents (parameter sharing). Results hold trial_episode_{i}_return_mean (team, summed over
agents) and agent_trial_episode_{i}_return_mean/<agent> under env_runners/.

RLlib's tuned-example form of
`cooperative_navigation.yaml`: the settings that differ from the config's defaults
(`tests/cli/test_tuned_examples.py` keeps the result equal to the YAML's), run by RLlib's
example-script runner:

    python tuned_examples/rl2/cooperative_navigation.py --help
"""

from rllib_marl_meta import RL2Config
from rllib_marl_meta.examples import run_tuned_example, tuned_example_parser

parser = tuned_example_parser("RL2", timesteps=5_000_000)

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
        max_seq_len=60,
        lr=0.0003,
        train_batch_size_per_learner=6000,
        minibatch_size=1000,
    )
)

if __name__ == "__main__":
    run_tuned_example(config, parser)
