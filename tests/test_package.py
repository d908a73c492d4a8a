"""The package's public API: what `import rllib_marl_meta` gives."""

from __future__ import annotations


def test_algorithms_are_exported_at_the_top_level_and_registered_with_tune():
    from ray.tune.registry import get_trainable_cls

    import rllib_marl_meta
    from rllib_marl_meta.algorithms.maml import MAML, MAMLConfig
    from rllib_marl_meta.algorithms.rl2 import RL2, RL2Config

    assert (rllib_marl_meta.MAML, rllib_marl_meta.MAMLConfig) == (MAML, MAMLConfig)
    assert (rllib_marl_meta.RL2, rllib_marl_meta.RL2Config) == (RL2, RL2Config)
    assert get_trainable_cls("MAML") is MAML and get_trainable_cls("RL2") is RL2
    assert {"MAML", "MAMLConfig", "RL2", "RL2Config"} <= set(rllib_marl_meta.__all__)
