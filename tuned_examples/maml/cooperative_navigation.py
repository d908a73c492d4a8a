"""Multi-agent MAML on CooperativeNavigation: 2 agents cover 2 landmarks whose layout and the
agents' top speed change per task. One policy shared by all agents (parameter sharing);
`policy_mapping: per_agent` gives each agent its own policy (see
cooperative_navigation_per_agent.yaml). Returns are team returns (summed over agents); the
progress table shows the team, and results hold module_/agent_episode_return_mean too.
Measured (2 cores): the run below stopped at iteration 18 (72k env steps, 69 s) with adapt 1
return -39.0 on that iteration's tasks; `evaluate CHECKPOINT --num-tasks 20 --seed 1` gave
-59.1 -> -53.6 on held-out tasks. The stop value is a one-iteration mean, so it can fire on a
lucky batch. The agents start almost at one spot, which gives a shared policy little to tell
them apart by; per-agent modules (cooperative_navigation_per_agent.yaml) reached -51.0 ->
-36.8 on held-out tasks at 152k env steps in bench/marl_meta.py.

RLlib's tuned-example form of
`cooperative_navigation.yaml`: the settings that differ from the config's defaults
(`tests/cli/test_tuned_examples.py` keeps the result equal to the YAML's), run by RLlib's
example-script runner:

    python tuned_examples/maml/cooperative_navigation.py --help
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
        policies={"shared"},
        policy_mapping_fn=lambda agent_id, episode, **kwargs: "shared",
    )
    .debugging(seed=0)
    .team_training()  # 10 tasks x 10 episodes, inner_lr 0.3, lr 3e-3: MAML's team setting.
)

if __name__ == "__main__":
    run_tuned_example(config, parser)
