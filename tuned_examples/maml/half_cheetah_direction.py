"""MAML on HalfCheetah running forward or backward (direction ~ U{-1, 1}), horizon 100 as in ProMP
(the MAML paper used 200). Sized for 2 CPUs: 10 tasks x 10 episodes per adaptation step, a
quarter of ProMP's batch (bench/maml_learning.py's setting; README, Benchmarks). ProMP's
paper scale on a cluster: `--num-env-runners 32` and `meta_batch_size=40, episodes_per_task=20`.
It stops at 3M env steps only, with no return target: at that budget the cheetah learns to
stand nearly still, the best policy when the direction is unknown, and one inner step does
not yet tell the directions apart. bench/maml_learning.py ran these settings to 3M (658 s):
return after one step -21.8 on 20 held-out directions, gain +5.4 [95% CI -1.4, +12.2]. A run
of this file (seed 0, 2 CPUs, a second run beside it) stayed flat: the return after one step
averaged -31.3 over iterations 1-10 and -31.9 over 11-23 (460k env steps, 819 s; stopped).
Needs the mujoco extra: pip install -c constraints.txt -e ".[mujoco]"

RLlib's tuned-example form of
`half_cheetah_direction.yaml`: the settings that differ from the config's defaults
(`tests/cli/test_tuned_examples.py` keeps the result equal to the YAML's), run by RLlib's
example-script runner:

    python tuned_examples/maml/half_cheetah_direction.py --help
"""

from rllib_marl_meta import MAMLConfig
from rllib_marl_meta.examples import run_tuned_example, tuned_example_parser

parser = tuned_example_parser("MAML", timesteps=3_000_000)

config = (
    MAMLConfig()
    .environment("HalfCheetahDirection", env_config={"horizon": 100})
    .env_runners(num_env_runners=1, num_envs_per_env_runner=5)
    .debugging(seed=0)
    .training(meta_batch_size=10, episodes_per_task=10)
)

if __name__ == "__main__":
    run_tuned_example(config, parser)
