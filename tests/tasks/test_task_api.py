"""TaskField / TaskSpace / TaskSettableMixin: sampling, validation messages, defaults."""

from __future__ import annotations

import numpy as np
import pytest

from rllib_marl_meta.tasks import (
    TaskField,
    TaskSettable,
    TaskSettableMixin,
    TaskSpace,
    has_task_api,
    missing_task_methods,
)


class _Toy(TaskSettableMixin):
    """A minimal task-settable object without ``np_random``."""

    task_space = TaskSpace(
        mass=(0.5, 2.0),
        goal=TaskField(-1.0, 1.0, shape=(2,)),
        arms=TaskField(1, 5, integer=True),
        sign=TaskField.one_of(-1.0, 1.0),
    )

    def __init__(self) -> None:
        self.applied: list[dict] = []

    def _apply_task(self, task):
        self.applied.append(task)


def _valid_task() -> dict:
    return {"mass": 1.0, "goal": [0.1, -0.2], "arms": 3, "sign": -1.0}


def test_sample_respects_ranges_shapes_and_types():
    tasks = _Toy().sample_tasks(200, seed=0)
    assert len(tasks) == 200
    masses = np.array([t["mass"] for t in tasks])
    goals = np.stack([t["goal"] for t in tasks])
    assert np.all((masses >= 0.5) & (masses <= 2.0))
    assert goals.shape == (200, 2) and np.all(np.abs(goals) <= 1.0)
    assert {t["arms"] for t in tasks} == {1, 2, 3, 4, 5}
    assert all(isinstance(t["arms"], int) and isinstance(t["mass"], float) for t in tasks)
    assert {t["sign"] for t in tasks} == {-1.0, 1.0}


def test_sample_tasks_is_reproducible_under_a_seed():
    a, b = _Toy().sample_tasks(5, seed=42), _Toy().sample_tasks(5, seed=42)
    c = _Toy().sample_tasks(5, seed=43)
    for ta, tb in zip(a, b):
        assert ta["mass"] == tb["mass"]
        np.testing.assert_array_equal(ta["goal"], tb["goal"])
    assert [t["mass"] for t in a] != [t["mass"] for t in c]


def test_sample_tasks_uses_the_env_np_random_when_unseeded():
    toy = _Toy()
    toy.np_random = np.random.default_rng(7)
    first = toy.sample_tasks(3)
    toy.np_random = np.random.default_rng(7)
    assert [t["mass"] for t in toy.sample_tasks(3)] == [t["mass"] for t in first]


def test_private_task_rng_is_reseeded_by_seed_task_rng():
    toy = _Toy()
    toy._seed_task_rng(3)
    first = toy.sample_tasks(2)
    toy._seed_task_rng(3)
    assert [t["mass"] for t in toy.sample_tasks(2)] == [t["mass"] for t in first]


@pytest.mark.parametrize("n", [-1, 1.5, "3", True])
def test_sample_rejects_bad_n(n):
    with pytest.raises(ValueError, match="non-negative integer"):
        _Toy().sample_tasks(n)


def test_set_get_round_trip_and_copies():
    toy = _Toy()
    toy.set_task(_valid_task())
    task = toy.get_task()
    assert isinstance(task["goal"], np.ndarray) and task["arms"] == 3
    task["goal"][0] = 0.9  # get_task returns copies: mutating them changes nothing.
    np.testing.assert_array_equal(toy.get_task()["goal"], [0.1, -0.2])
    toy.set_task(toy.get_task())
    np.testing.assert_array_equal(toy.get_task()["goal"], [0.1, -0.2])
    assert len(toy.applied) == 2


def test_get_task_before_set_applies_the_default():
    toy = _Toy()
    task = toy.get_task()
    assert task["mass"] == 1.25 and task["arms"] == 3 and task["sign"] == -1.0
    np.testing.assert_array_equal(task["goal"], [0.0, 0.0])
    assert toy.applied, "the default task must be pushed into the dynamics"


def test_reset_task_from_options():
    toy = _Toy()
    toy._reset_task_from_options({"task": _valid_task()})
    assert toy.get_task()["arms"] == 3
    toy._reset_task_from_options(None)  # Keeps the current task.
    assert toy.get_task()["sign"] == -1.0


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("mass", 2.5, "out of range"),
        ("mass", -np.inf, "finite"),
        ("mass", np.nan, "finite"),
        ("mass", "1.0", "numeric"),
        ("mass", None, "numeric"),
        ("mass", True, "numeric"),
        ("mass", [1.0], "shape"),
        ("goal", [0.1, 0.2, 0.3], "shape"),
        ("goal", [0.1, 1.5], "out of range"),
        ("goal", {"x": 1}, "numeric"),
        ("arms", 2.5, "integer"),
        ("arms", 9, "out of range"),
        ("sign", 0.0, "not allowed"),
    ],
)
def test_invalid_values_name_the_field_and_allowed_values(field, value, fragment):
    task = {**_valid_task(), field: value}
    with pytest.raises(ValueError) as info:
        _Toy().set_task(task)
    message = str(info.value)
    assert f"'{field}'" in message and fragment in message
    assert _Toy.task_space.fields[field].allowed() in message


def test_allowed_texts():
    fields = _Toy.task_space.fields
    assert fields["mass"].allowed() == "allowed range [0.5, 2.0]"
    assert fields["goal"].allowed() == "allowed range [-1.0, 1.0] with shape (2,)"
    assert fields["sign"].allowed() == "allowed values {-1, 1}"


def test_unknown_missing_and_non_dict_tasks():
    with pytest.raises(ValueError, match=r"Unknown task field\(s\) \['speed'\]") as info:
        _Toy().set_task({**_valid_task(), "speed": 1.0})
    assert "mass~U[0.5, 2.0]" in str(info.value)
    task = _valid_task()
    del task["goal"]
    with pytest.raises(ValueError, match=r"missing field\(s\) \['goal'\]") as info:
        _Toy().set_task(task)
    assert "allowed range [-1.0, 1.0] with shape (2,)" in str(info.value)
    with pytest.raises(ValueError, match="must be a dict") as info:
        _Toy().set_task([1.0, 2.0])
    assert "mass~U[0.5, 2.0]" in str(info.value)


def test_invalid_task_leaves_the_current_task_untouched():
    toy = _Toy()
    toy.set_task(_valid_task())
    with pytest.raises(ValueError):
        toy.set_task({**_valid_task(), "mass": 5.0})
    assert toy.get_task()["mass"] == 1.0 and len(toy.applied) == 1


def test_task_field_construction_errors():
    with pytest.raises(ValueError, match="low <= high"):
        TaskField(1.0, 0.0)
    with pytest.raises(ValueError, match="must lie in"):
        TaskField(0.0, 1.0, choices=(0.0, 2.0))
    with pytest.raises(ValueError):
        TaskField.one_of()
    with pytest.raises(ValueError, match="at least one field"):
        TaskSpace()


def test_describe():
    assert _Toy.task_space.describe() == (
        "mass~U[0.5, 2.0], goal~U[-1.0, 1.0]^(2,), arms~U[1, 5], sign~U{-1, 1}"
    )
    assert "mass~U[0.5, 2.0]" in repr(_Toy.task_space)


def test_protocol_and_missing_methods():
    assert isinstance(_Toy(), TaskSettable) and has_task_api(_Toy())

    class Partial:
        def set_task(self, task): ...

    assert missing_task_methods(Partial()) == ["sample_tasks", "get_task"]
    assert not has_task_api(Partial())


def test_unimplemented_apply_task_raises():
    class NoApply(TaskSettableMixin):
        task_space = TaskSpace(x=(0.0, 1.0))

    with pytest.raises(NotImplementedError, match="_apply_task"):
        NoApply().set_task({"x": 0.5})


def test_splits_of_a_parametric_distribution_and_of_an_env_without_them():
    """A parametric distribution draws both splits from its one space (the seed keeps them
    apart); an env whose `sample_tasks` has no `split` argument keeps working for both."""
    from rllib_marl_meta.envs import make_env
    from rllib_marl_meta.tasks import draw_tasks

    env = make_env("PointNavigation2D")
    train = draw_tasks(env, 4, seed=3)
    test = draw_tasks(env, 4, seed=3, split="test")
    assert [t["goal"].tolist() for t in train] == [t["goal"].tolist() for t in test]
    with pytest.raises(ValueError, match="`split` must be 'train' or 'test', got 'dev'"):
        draw_tasks(env, 1, split="dev")
    with pytest.raises(ValueError, match="`split`"):
        env.sample_tasks(1, split="dev")

    class NoSplits:
        def sample_tasks(self, n, seed=None):
            return [{"seed": seed, "i": i} for i in range(n)]

    assert draw_tasks(NoSplits(), 2, seed=5, split="test") == [
        {"seed": 5, "i": 0},
        {"seed": 5, "i": 1},
    ]
