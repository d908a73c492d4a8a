"""Meta-test reports: the table, the JSON file and the PNG plot, on hand-made results."""

from __future__ import annotations

import json
import math

import matplotlib
import numpy as np
import pytest

from rllib_marl_meta.evaluation import MetaTestResult
from rllib_marl_meta.evaluation.report import (
    NO_ADAPTATION,
    adaptation_gain,
    draw_curve,
    format_table,
    plot_curve,
    report_dict,
    series_of,
    write_report,
)

matplotlib.use("Agg")


def single_agent() -> MetaTestResult:
    return MetaTestResult(
        algorithm="MAML",
        env="PointNavigation2D",
        num_tasks=3,
        seed=4,
        labels=["pre", "adapt_1", "adapt_2"],
        returns=[[-10.0, -12.0, -14.0], [-8.0, -9.0, -13.0], [-5.0, -7.0, -9.0]],
    )


def multi_agent() -> MetaTestResult:
    agent = [[-2.0, -4.0], [-1.0, -2.0]]
    return MetaTestResult(
        algorithm="RL2",
        env="CooperativeNavigation",
        num_tasks=2,
        seed=0,
        labels=["episode_1", "episode_2"],
        returns=[[-4.0, -8.0], [-2.0, -4.0]],
        groups={
            "module": {"shared": [[-4.0, -8.0], [-2.0, -4.0]]},
            "agent": {"agent_0": agent, "agent_1": agent},
        },
    )


def test_table_shows_mean_and_standard_error_per_point():
    table = format_table(single_agent())
    lines = table.splitlines()
    assert "MAML on PointNavigation2D: 3 new tasks (seed 4)" in lines[0]
    assert lines[1].split()[:2] == ["point", "return"]
    # pre: mean -12, stderr = std([-10,-12,-14], ddof=1)/sqrt(3) = 2/sqrt(3)
    pre = next(line for line in lines if line.startswith("pre-adaptation"))
    assert f"-12.000 ± {2 / math.sqrt(3):.3f}" in pre
    step2 = next(line for line in lines if line.startswith("after step 2"))
    assert "-7.000 ±" in step2 and step2.endswith("+5.000")  # change vs pre-adaptation
    # Paired by task: deltas 5, 5, 5 -> +5 with a zero-width interval.
    assert lines[-1] == (
        "Adaptation (after step 2 minus pre-adaptation): +5.000 ± 0.000 (95% CI over tasks)"
    )


def test_multi_agent_table_has_team_module_and_agent_columns():
    table = format_table(multi_agent())
    header = table.splitlines()[1].split()
    assert header[:5] == ["point", "team", "module/shared", "agent/agent_0", "agent/agent_1"]
    episode_2 = next(line for line in table.splitlines() if line.startswith("episode 2"))
    assert "-3.000 ± 1.000" in episode_2 and "-1.500 ± 0.500" in episode_2
    assert [s.name for s in series_of(multi_agent())][0] == "team"


def test_adaptation_gain_is_paired_by_task():
    mean, ci = adaptation_gain([[0.0, 10.0, 20.0], [1.0, 12.0, 20.0]])
    deltas = np.array([1.0, 2.0, 0.0])
    assert mean == pytest.approx(1.0)
    assert ci == pytest.approx(1.96 * deltas.std(ddof=1) / math.sqrt(3))


def test_json_holds_summary_and_raw_returns(tmp_path):
    result = multi_agent()
    table, json_path, png_path = write_report(result, tmp_path / "out", checkpoint="/ckpt")
    data = json.loads(json_path.read_text())
    assert data["checkpoint"] == "/ckpt"
    assert data["labels"] == ["episode_1", "episode_2"]
    assert data["mean"] == [-6.0, -3.0]
    assert data["series"]["agent/agent_1"]["mean"] == [-3.0, -1.5]
    assert data["adaptation"] == {
        "from": "episode_1",
        "to": "episode_2",
        "mean": 3.0,
        "ci95": pytest.approx(1.96 * 1.0),
    }
    assert data["groups"]["module"]["shared"] == result.groups["module"]["shared"]
    assert table == format_table(result)
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_dict_converts_numpy_values():
    result = single_agent()
    result.returns = [np.array(r) for r in result.returns]
    data = report_dict(result)
    json.dumps(data)  # Plain JSON types only.
    assert data["returns"][0] == [-10.0, -12.0, -14.0]


def test_plot_draws_curve_and_no_adaptation_line(tmp_path):
    import matplotlib.pyplot as plt

    result = single_agent()
    fig, ax = plt.subplots()
    try:
        draw_curve(ax, result)
        lines = {line.get_label(): line for line in ax.get_lines()}
        team = lines["return (mean ± s.e.)"]
        assert list(team.get_ydata()) == pytest.approx([-12.0, -10.0, -7.0])
        baseline = next(line for label, line in lines.items() if label.startswith(NO_ADAPTATION))
        assert set(baseline.get_ydata()) == {-12.0}
        assert [t.get_text() for t in ax.get_xticklabels()] == [
            "pre-adaptation",
            "after step 1",
            "after step 2",
        ]
    finally:
        plt.close(fig)
    path = plot_curve(result, tmp_path / "curve.png")
    image = plt.imread(path)
    assert image.shape[0] > 100 and image.shape[1] > 100


def test_success_rate_is_a_column_a_json_series_and_a_curve_on_its_own_axis(tmp_path):
    import dataclasses

    import matplotlib.pyplot as plt

    result = dataclasses.replace(
        single_agent(), success=[[0.0, 0.5, 0.0], [0.5, 0.5, 1.0], [1.0, 1.0, 0.5]]
    )
    table = format_table(result)
    header = table.splitlines()[1].split()
    assert header[:3] == ["point", "return", "success"]
    assert "0.833 ± 0.167" in table.splitlines()[-3]  # After step 2: mean 5/6 over 3 tasks.
    data = report_dict(result)
    assert data["success"] == result.success
    assert data["series"]["success"]["mean"] == pytest.approx([1 / 6, 2 / 3, 5 / 6])
    fig, ax = plt.subplots()
    try:
        draw_curve(ax, result)
        assert "success" not in {line.get_label() for line in ax.get_lines()}
        (rate_axis,) = [a for a in fig.axes if a is not ax]
        (rate,) = rate_axis.get_lines()
        assert list(rate.get_ydata()) == pytest.approx([1 / 6, 2 / 3, 5 / 6])
    finally:
        plt.close(fig)
    assert "success" not in [s.name for s in series_of(single_agent())]
