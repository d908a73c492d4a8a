"""Multi-agent MAML on CooperativeNavigation with one policy per agent: each agent's module is
adapted to the task on its own returns.
Measured with these settings by bench/marl_meta.py (README, Benchmarks): held-out team return
-51.0 before and -36.8 after one inner step at 152k env steps.
Run to its target (2026-12-01, seed 0, `rllib-marl-meta train -f` this file): the return after
one adaptation step reached -40 (-34.5, on that iteration's tasks) at iteration 14, 56,000 env
steps, 80 s on 2 CPUs shared with another training run.

RLlib's tuned-example form of
`cooperative_navigation_per_agent.yaml`: the settings that differ from the config's defaults
(`tests/cli/test_tuned_examples.py` keeps the result equal to the YAML's), run by RLlib's
example-script runner:

    python tuned_examples/maml/cooperative_navigation_per_agent.py --help
"""

from rllib_marl_meta import MAMLConfig
from rllib_marl_meta.examples import run_tuned_example, tuned_example_parser

parser = tuned_example_parser(
    "MAML", timesteps=5_000_000, target_metric="episode_return_mean_adapt_1", target=-40.0
)

config = (
    MAMLConfig()
    .environment(
        "CooperativeNavigation", env_config={"num_agents": 2, "horizon": 20, "spawn_range": 0.1}
    )
    .env_runners(num_env_runners=1)
    .multi_agent(
        policies={"agent_0", "agent_1"},  # One module per agent.
        policy_mapping_fn=lambda agent_id, episode, **kwargs: agent_id,
    )
    .debugging(seed=0)
    .team_training()  # 10 tasks x 10 episodes, inner_lr 0.3, lr 3e-3: MAML's team setting.
)

if __name__ == "__main__":
    run_tuned_example(config, parser)
