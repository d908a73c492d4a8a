"""Human- and machine-readable reports of a meta-test: a text table, a JSON file and a PNG plot.

A :class:`~rllib_marl_meta.meta_learner.MetaTestResult` holds, for every point of the
adaptation curve (MAML: ``pre``, ``adapt_1`` ... ; RL²: ``episode_1`` ...), one return per
held-out task. The report summarises each point as mean ± standard error over tasks and compares
every point with the first one, the "no adaptation" baseline: for MAML the pre-adaptation policy,
for RL² the first inner episode of a trial, before the agent has seen anything of the task.

Multi-agent results carry the same numbers per module and per agent (``result.groups``); the
report shows them as extra columns next to the team return.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rllib_marl_meta.meta_learner import MetaTestResult

TEAM = "team"
RETURN = "return"
SUCCESS = "success"
NO_ADAPTATION = "no adaptation"
JSON_NAME = "meta_test.json"
PNG_NAME = "meta_test.png"


@dataclass(frozen=True)
class Series:
    """One curve of the report: a name and one list of task returns per curve point."""

    name: str
    returns: list[list[float]]

    @property
    def mean(self) -> list[float]:
        return [float(np.mean(r)) if len(r) else math.nan for r in self.returns]

    @property
    def stderr(self) -> list[float]:
        return [_stderr(r) for r in self.returns]


def _stderr(values: list[float]) -> float:
    """Standard error of the mean over tasks (0 for a single task)."""
    if len(values) < 2:
        return 0.0
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))


def series_of(result: MetaTestResult) -> list[Series]:
    """The team curve first, then one per module and per agent (``module/<id>``, ``agent/<id>``),
    then the success rate (``success``) if the env reports one.

    In a single-agent result the first curve is named ``return`` (the episode return).
    """
    out = [Series(TEAM if result.groups else RETURN, result.returns)]
    for group in ("module", "agent"):
        for name, returns in sorted(result.groups.get(group, {}).items()):
            out.append(Series(f"{group}/{name}", returns))
    if result.success:  # Envs with a success flag (Meta-World): the task's success rate.
        out.append(Series(SUCCESS, result.success))
    return out


def point_label(label: str) -> str:
    """A readable name for a curve point: ``pre`` -> ``pre-adaptation``, ``adapt_2`` -> ..."""
    if label == "pre":
        return "pre-adaptation"
    if label.startswith("adapt_"):
        return f"after step {label.removeprefix('adapt_')}"
    if label.startswith("episode_"):
        return f"episode {label.removeprefix('episode_')}"
    return label


def adaptation_gain(returns: list[list[float]]) -> tuple[float, float]:
    """Mean and 95% half-width (1.96 · stderr) of last-minus-first return, paired by task."""
    first, last = np.asarray(returns[0], float), np.asarray(returns[-1], float)
    deltas = last - first
    return float(deltas.mean()), 1.96 * _stderr(list(deltas))


def format_table(result: MetaTestResult) -> str:
    """A plain-text table: one row per curve point, one ``mean ± stderr`` column per series.

    The last column is the team's change relative to the first point (the "no adaptation"
    baseline); the closing line gives that change at the last point with a 95% interval over
    tasks, paired by task.
    """
    series = series_of(result)
    header = ["point", *[s.name for s in series], f"Δ {series[0].name}"]
    rows = []
    team = series[0]
    for i, label in enumerate(result.labels):
        cells = [point_label(label)]
        for s in series:
            cells.append(f"{s.mean[i]:.3f} ± {s.stderr[i]:.3f}")
        cells.append("" if i == 0 else f"{team.mean[i] - team.mean[0]:+.3f}")
        rows.append(cells)
    widths = [max(len(row[c]) for row in [header, *rows]) for c in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:])]
        return "  ".join([first, *rest]).rstrip()

    gain, ci = adaptation_gain(result.returns)
    title = (
        f"Meta-test of {result.algorithm} on {result.env}: {result.num_tasks} new tasks "
        f"(seed {result.seed}); mean ± standard error over tasks"
    )
    closing = (
        f"Adaptation ({point_label(result.labels[-1])} minus {point_label(result.labels[0])}): "
        f"{gain:+.3f} ± {ci:.3f} (95% CI over tasks)"
    )
    rule = "-" * len(line(header))
    return "\n".join([title, line(header), rule, *(line(r) for r in rows), rule, closing])


def report_dict(result: MetaTestResult, checkpoint: str | None = None) -> dict[str, Any]:
    """Everything in the table, plus the raw per-task returns, as JSON-ready data."""
    gain, ci = adaptation_gain(result.returns)
    data = result.to_dict()
    data["checkpoint"] = checkpoint
    data["series"] = {
        s.name: {"mean": s.mean, "stderr": s.stderr, "returns": s.returns}
        for s in series_of(result)
    }
    data["adaptation"] = {
        "from": result.labels[0],
        "to": result.labels[-1],
        "mean": gain,
        "ci95": ci,
    }
    return _jsonable(data)


def _jsonable(value: Any) -> Any:
    """Converts numpy scalars and arrays (and tuples) into plain JSON types."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def save_json(result: MetaTestResult, path: str | Path, checkpoint: str | None = None) -> Path:
    """Writes :func:`report_dict` to ``path`` and returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report_dict(result, checkpoint), indent=2) + "\n")
    return path


def draw_curve(ax: Any, result: MetaTestResult) -> None:
    """Draws the adaptation curve on a matplotlib ``Axes`` (see :func:`plot_curve`)."""
    x = np.arange(len(result.labels))
    series = series_of(result)
    team = series[0]
    mean, err = np.asarray(team.mean), np.asarray(team.stderr)
    ax.plot(x, mean, marker="o", linewidth=2, color="C0", label=f"{team.name} (mean ± s.e.)")
    ax.fill_between(x, mean - err, mean + err, color="C0", alpha=0.2)
    for j, s in enumerate(series[1:], start=1):
        if s.name == SUCCESS:  # A rate in [0, 1]: on its own axis, on the right.
            rate = ax.twinx()
            rate.plot(x, s.mean, marker="s", linestyle=":", color="C3", label="success rate")
            rate.set_ylim(-0.05, 1.05)
            rate.set_ylabel("success rate", color="C3")
            continue
        ax.plot(x, s.mean, marker=".", linewidth=1, color=f"C{j % 10}", label=s.name)
    ax.axhline(
        mean[0],
        color="grey",
        linestyle="--",
        linewidth=1,
        label=f"{NO_ADAPTATION} ({point_label(result.labels[0])})",
    )
    ax.set_xticks(x, [point_label(label) for label in result.labels])
    if len(x) > 6:
        for tick in ax.get_xticklabels():
            tick.set_rotation(45)
            tick.set_horizontalalignment("right")
    ax.set_ylabel("episode return")
    ax.set_title(f"{result.algorithm} on {result.env}: {result.num_tasks} new tasks")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")


def plot_curve(result: MetaTestResult, path: str | Path) -> Path:
    """Saves the adaptation curve as a PNG and returns the path.

    The team mean is drawn with a ±1 standard error band; module and agent curves, if any, as
    thin lines. A dashed horizontal line marks the first point's team mean ("no adaptation"),
    so any rise above it is what adaptation bought.
    """
    import matplotlib

    matplotlib.use("Agg")  # Files only: never needs a display.
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    try:
        draw_curve(ax, result)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return path


def write_report(
    result: MetaTestResult, output_dir: str | Path, checkpoint: str | None = None
) -> tuple[str, Path, Path]:
    """Table text, JSON file and PNG file of one meta-test, written into ``output_dir``."""
    output_dir = Path(output_dir)
    json_path = save_json(result, output_dir / JSON_NAME, checkpoint)
    png_path = plot_curve(result, output_dir / PNG_NAME)
    return format_table(result), json_path, png_path
