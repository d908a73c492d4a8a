"""RLlib Algorithms for meta-RL."""
