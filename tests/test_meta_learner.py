"""The meta-learner contract: one result type in a leaf module, every algorithm meets it,
and the package has no import circle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rllib_marl_meta
from rllib_marl_meta import MAML, RL2, evaluation
from rllib_marl_meta.meta_learner import MetaLearner, MetaTestResult, is_meta_learner

PACKAGE = Path(rllib_marl_meta.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The package's modules that ``path`` imports anywhere (also inside functions)."""
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
            names = [n if n in modules else node.module for n in names]
        else:
            continue
        found |= {n for n in names if n in modules}
    return found - {_module_name(path)}


def test_the_result_type_lives_in_a_leaf_module():
    assert _imports(PACKAGE / "meta_learner.py") == set()
    assert evaluation.MetaTestResult is MetaTestResult


def test_the_package_has_no_import_circle():
    graph = {_module_name(p): _imports(p) for p in PACKAGE.rglob("*.py")}

    # A package's __init__ may import its own submodules; a circle is anything else that comes
    # back to where it started.
    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for nxt in graph.get(start, ()):
            if nxt == target:
                return True
            if nxt not in seen:
                seen.add(nxt)
                if reaches(nxt, target, seen):
                    return True
        return False

    circles = [
        (module, imported)
        for module, imports in graph.items()
        for imported in imports
        if not imported.startswith(module + ".")
        and reaches(imported, module, set())
        and not module.startswith(imported + ".")
    ]
    assert circles == []


@pytest.mark.parametrize("name", sorted(rllib_marl_meta.ALGORITHMS))
def test_every_registered_algorithm_meets_the_contract(name):
    module, cls = rllib_marl_meta.ALGORITHMS[name].split(":")
    algorithm = getattr(__import__(module, fromlist=[cls]), cls)
    assert is_meta_learner(algorithm)
    assert callable(algorithm.progress_columns)


def test_progress_columns_follow_the_settings():
    maml = MAML.progress_columns(lambda key, default: {"inner_adaptation_steps": 2}[key])
    assert list(maml) == [
        "episode_return_mean",
        "episode_return_mean_adapt_1",
        "episode_return_mean_adapt_2",
        "adaptation_delta",
        "adaptation_delta_ci95",
    ]
    rl2 = RL2.progress_columns(lambda key, default: {"episodes_per_trial": 21}[key])
    episodes = [k for k in rl2 if k.startswith("env_runners/trial_episode_")]
    assert episodes[0] == "env_runners/trial_episode_1_return_mean"
    assert episodes[-1] == "env_runners/trial_episode_21_return_mean"
    assert len(episodes) == 5
    assert rl2["env_runners/trial_adaptation_mean"] == "ep 21 - ep 1"


def test_meta_testing_something_else_is_a_clear_error():
    class NotAMetaLearner:
        def train(self):
            return {}

    assert not is_meta_learner(NotAMetaLearner)
    assert not isinstance(NotAMetaLearner(), MetaLearner)
    with pytest.raises(TypeError, match="Cannot meta-test NotAMetaLearner.*MAML and RL2"):
        evaluation.meta_test(NotAMetaLearner())


def test_result_summaries():
    result = MetaTestResult(
        "RL2", "Bandit", 2, 5, ["episode_1", "episode_2"], [[1.0, 3.0], [2.0, 6.0]]
    )
    assert result.mean == [2.0, 4.0]
    assert result.stderr == pytest.approx([1.0, 2.0])
    assert result.to_dict()["returns"] == [[1.0, 3.0], [2.0, 6.0]]
    one_task = MetaTestResult("MAML", "E", 1, 0, ["pre"], [[4.0]])
    assert one_task.stderr == [0.0]
