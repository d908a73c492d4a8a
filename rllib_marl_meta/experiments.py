"""Experiment files: the YAML format of RLlib's old tuned examples, loaded and checked for Tune.

A file holds one or more experiments::

    maml-pointnav:                  # experiment name (Tune's run name)
      env: PointNavigation2D        # registered env name, gymnasium id or "module.Class"
      run: MAML                     # algorithm: MAML, RL2 or any RLlib algorithm (PPO, ...)
      stop:                         # Tune stop criteria (any one reached stops the trial)
        episode_return_mean_adapt_1: -12.0
        env_runners/num_env_steps_sampled_lifetime: 2000000
      config:                       # the algorithm config as a flat dict (AlgorithmConfig keys)
        env_config: {horizon: 100}
        meta_batch_size: 20
        inner_lr: {grid_search: [0.05, 0.1]}
        model_config: {fcnet_hiddens: [64, 64]}
      # optional: num_samples, checkpoint_freq, checkpoint_at_end, storage_path

Beyond plain values, ``config`` accepts:

- Tune search spaces, each a one-key mapping: ``{grid_search: [...]}``, ``{choice: [...]}``,
  ``{uniform: [low, high]}``, ``{quniform: [low, high, q]}``, ``{loguniform: [low, high]}``,
  ``{qloguniform: [low, high, q]}``, ``{randint: [low, high]}`` (high exclusive),
  ``{qrandint: [low, high, q]}``, ``{randn: [mean, sd]}``, ``{qrandn: [mean, sd, q]}``;
- ``model_config``: the RLModule's model config (``config.rl_module(model_config=...)``);
- ``multi_agent``: a YAML-friendly multi-agent setup (see :func:`multi_agent_settings`):
  ``{policy_mapping: shared | per_agent | {agent_id: policy_id}, policies: [...],
  policies_to_train: [...]}``.

Everything is checked before Ray starts: unknown algorithms, envs and config keys (with the
nearest valid key suggested), malformed search spaces, and the algorithm config's own
``validate()`` on a representative sample of the search space. Problems raise
:class:`ExperimentError` with a one-line message.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import inspect
import itertools
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Keys of one experiment besides its name.
EXPERIMENT_KEYS = (
    "env",
    "run",
    "stop",
    "config",
    "num_samples",
    "checkpoint_freq",
    "checkpoint_at_end",
    "checkpoint_config",
    "storage_path",
    "local_dir",
)
# Tune search-space constructors accepted as one-key mappings in `config`.
SEARCH_SPACES = {
    "choice": 1,
    "uniform": 2,
    "quniform": 3,
    "loguniform": 2,
    "qloguniform": 3,
    "randint": 2,
    "qrandint": 3,
    "randn": 2,
    "qrandn": 3,
}
# Keys handled by us or by `update_from_dict` although they are no attributes of the config.
# (`update_from_dict` also translates old keys such as `lambda`; see `check_config_keys`.)
EXTRA_CONFIG_KEYS = ("multi_agent", "multiagent", "env", "model_config")
# How many search-space variants `validate()` is run on at most.
MAX_VALIDATED_VARIANTS = 20
MAX_VALIDATION_ERROR_CHARS = 400


class ExperimentError(ValueError):
    """Bad user input: an experiment file, an override or a checkpoint. One-line message."""


# --- YAML ------------------------------------------------------------------------------------


class _Loader(yaml.SafeLoader):
    """YAML 1.1's safe loader, but ``1e6`` is a float (PyYAML reads it as a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+][0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _yaml_error(exc: yaml.YAMLError, where: str) -> ExperimentError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    position = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return ExperimentError(f"Malformed YAML in {where}{position}: {problem}.")


def load_yaml_file(path: str | Path) -> dict[str, Any]:
    """Reads an experiment file; the top level must be a mapping of experiment names."""
    path = Path(path)
    if not path.exists():
        raise ExperimentError(f"Experiment file not found: {path}.")
    if not path.is_file():
        raise ExperimentError(f"Experiment file is not a file: {path}.")
    try:
        data = yaml.load(path.read_text(), Loader=_Loader)  # noqa: S506 - a SafeLoader.
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, str(path)) from None
    except UnicodeDecodeError as exc:
        raise ExperimentError(f"Experiment file {path} is not UTF-8 text ({exc.reason}).") from None
    if not isinstance(data, dict) or not data:
        raise ExperimentError(
            f"Experiment file {path} must map experiment names to "
            "{env, run, stop, config}; it holds "
            f"{'nothing' if data is None else type(data).__name__}."
        )
    return data


def parse_override(text: str | None, option: str) -> dict[str, Any]:
    """Parses a ``--config``/``--stop`` override: a JSON or YAML mapping from the command line."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        try:
            value = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader.
        except yaml.YAMLError as exc:
            raise _yaml_error(exc, f"{option}") from None
    if not isinstance(value, dict):
        raise ExperimentError(
            f"{option} takes a JSON or YAML mapping such as '{{\"key\": 1}}', got {text!r}."
        )
    return value


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in: nested mappings merge, any other value replaces.

    A search space (``{grid_search: ...}`` etc.) is a value, not a mapping to merge into.
    """
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        old = out.get(key)
        if (
            isinstance(old, Mapping)
            and isinstance(value, Mapping)
            and not _is_search_space(old)
            and not _is_search_space(value)
        ):
            out[key] = deep_merge(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def flatten_stop(stop: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested stop criteria as Tune wants them: ``{"env_runners/num_env_steps_...": n}``."""
    out: dict[str, Any] = {}
    for key, value in stop.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_stop(value, prefix=f"{name}/"))
        else:
            out[name] = value
    return out


# --- Algorithms and envs -----------------------------------------------------------------------


def our_algorithms() -> dict[str, str]:
    """This package's algorithms: name -> "module:Class"."""
    from rllib_marl_meta import ALGORITHMS

    return dict(ALGORITHMS)


def rllib_algorithm_names() -> list[str]:
    """Names of RLlib's built-in algorithms (PPO, APPO, ...)."""
    from ray.rllib.algorithms.registry import ALGORITHMS

    return sorted(name for name in ALGORITHMS if not name.startswith("_"))


def algorithm_class(run: Any, where: str = "") -> type:
    """The Algorithm class for a ``run`` name: ours (MAML, RL2) or RLlib's (PPO, ...)."""
    ours = our_algorithms()
    if isinstance(run, str) and run in ours:
        module, cls = ours[run].split(":")
        return getattr(importlib.import_module(module), cls)
    theirs = rllib_algorithm_names()
    if isinstance(run, str) and run in theirs:
        from ray.rllib.algorithms.registry import ALGORITHMS

        return ALGORITHMS[run]()[0]
    known = sorted(ours) + theirs
    raise ExperimentError(
        f"Unknown algorithm (run: {run!r}){where}.{_did_you_mean(run, known)} "
        f"Meta-RL algorithms: {', '.join(sorted(ours))}; RLlib's also work (PPO, APPO, ...)."
    )


def _did_you_mean(word: Any, candidates: list[str] | set[str]) -> str:
    if not isinstance(word, str):
        return ""
    by_lower = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return f" Did you mean {by_lower[match[0]]!r}?" if match else ""


def check_env(env: Any, where: str = "") -> None:
    """Checks that ``env`` names something RLlib can create, before Ray starts.

    Accepted: a name registered with Tune (every built-in env), a gymnasium id, or the import
    path of an env class (``package.module.Class``).
    """
    import gymnasium as gym
    from ray.tune.registry import ENV_CREATOR, _global_registry

    from rllib_marl_meta.envs import BUILTIN_ENVS

    if env is None:
        raise ExperimentError(f"No env given{where}: set `env:` (e.g. env: PointNavigation2D).")
    if not isinstance(env, str):
        raise ExperimentError(f"`env`{where} must be a name, got {env!r}.")
    if _global_registry.contains(ENV_CREATOR, env):
        return
    try:
        gym.spec(env)
        return
    except Exception:  # noqa: BLE001 - gymnasium raises several error types for unknown ids.
        pass
    if "." in env:
        module, _, cls = env.rpartition(".")
        try:
            if isinstance(getattr(importlib.import_module(module), cls), type):
                return
        except Exception:  # noqa: BLE001 - not importable: report as unknown below.
            pass
    candidates = set(BUILTIN_ENVS) | set(gym.registry)
    raise ExperimentError(
        f"Unknown env {env!r}{where}: not a registered env, gymnasium id or importable "
        f"env class.{_did_you_mean(env, candidates)} Built-in envs: {', '.join(BUILTIN_ENVS)}."
    )


# --- Config keys -------------------------------------------------------------------------------


def valid_config_keys(algo_cls: type) -> set[str]:
    """Every key a dict config for ``algo_cls`` may hold (attributes, setters, our extra keys).

    Old keys that ``update_from_dict`` translates (``lambda``, ``num_workers``, ...) are not
    listed; ``check_config_keys`` translates them first.
    """
    default = algo_cls.get_default_config()
    keys = set(vars(default))
    for name, member in inspect.getmembers(type(default)):
        if isinstance(member, property) and member.fset is not None:
            keys.add(name)
    return keys | set(EXTRA_CONFIG_KEYS)


def check_config_keys(algo_cls: type, config: Mapping[str, Any], where: str = "") -> None:
    """Rejects keys the algorithm's config doesn't know, suggesting the nearest valid one."""
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

    valid = valid_config_keys(algo_cls)
    name = getattr(algo_cls, "__name__", str(algo_cls))
    for key in config:
        if key == "model":
            raise ExperimentError(
                f"Config key 'model'{where} is the old API stack's model dict, which RLlib's "
                "new API stack ignores; use 'model_config' "
                "(e.g. model_config: {fcnet_hiddens: [64, 64]})."
            )
        if AlgorithmConfig._translate_special_keys(key, warn_deprecated=False) not in valid:
            public = {k for k in valid if not k.startswith("_")}
            hint = _did_you_mean(key, public) or (
                " See the keyword arguments of the config class's training(), environment(), "
                "env_runners(), learners() ... methods."
            )
            raise ExperimentError(f"Unknown config key {key!r} for {name}{where}.{hint}")


# --- Multi-agent in YAML ------------------------------------------------------------------------


class SharedPolicyMapping:
    """Policy mapping fn: every agent uses the one policy ``policy_id``. Picklable."""

    def __init__(self, policy_id: str) -> None:
        self.policy_id = policy_id

    def __call__(self, agent_id: Any, *args: Any, **kwargs: Any) -> str:
        return self.policy_id

    def __repr__(self) -> str:
        return f"SharedPolicyMapping({self.policy_id!r})"


class PerAgentPolicyMapping:
    """Policy mapping fn: each agent has its own policy, named like the agent. Picklable."""

    def __call__(self, agent_id: Any, *args: Any, **kwargs: Any) -> str:
        return str(agent_id)

    def __repr__(self) -> str:
        return "PerAgentPolicyMapping()"


class TablePolicyMapping:
    """Policy mapping fn from a fixed ``{agent_id: policy_id}`` table. Picklable."""

    def __init__(self, table: Mapping[str, str]) -> None:
        self.table = {str(k): str(v) for k, v in table.items()}

    def __call__(self, agent_id: Any, *args: Any, **kwargs: Any) -> str:
        try:
            return self.table[str(agent_id)]
        except KeyError:
            raise KeyError(
                f"Agent {agent_id!r} is missing from the multi_agent policy_mapping table "
                f"{self.table}."
            ) from None

    def __repr__(self) -> str:
        return f"TablePolicyMapping({self.table!r})"


def env_agent_ids(env: str, env_config: Mapping[str, Any] | None) -> list[str] | None:
    """The agent ids of a multi-agent env (None if it isn't multi-agent), over its configs.

    Should ``env_config`` hold search spaces, one env is created per value of each grid search
    and choice (the others at their first value; at most ``MAX_VALIDATED_VARIANTS``), and the
    ids of all of them are returned: a ``per_agent`` mapping then has a policy for every agent
    that any trial can have (``num_agents: {grid_search: [2, 3]}`` gives agent_0..agent_2).
    """
    from ray.rllib.env.env_context import EnvContext
    from ray.tune.registry import ENV_CREATOR, _global_registry
    from ray.tune.search.sample import Categorical

    if not _global_registry.contains(ENV_CREATOR, env):
        return None
    if env_config is not None and not isinstance(env_config, Mapping):
        raise ExperimentError(
            f"`env_config` must be a mapping such as {{num_agents: 2}}, got {env_config!r}."
        )
    space = to_param_space(env_config or {}, "config.env_config")
    # Every category of a choice is a possible trial too: enumerate it as a grid.
    space = {
        key: {"grid_search": list(value.categories)} if isinstance(value, Categorical) else value
        for key, value in space.items()
    }
    creator = _global_registry.get(ENV_CREATOR, env)
    found: set[str] | None = None
    for sample in itertools.islice(_variants(space), MAX_VALIDATED_VARIANTS):
        try:
            instance = creator(EnvContext(dict(sample), 0))
        except Exception as exc:  # noqa: BLE001 - a bad env_config, reported as bad input.
            message = " ".join(str(exc).split()) or type(exc).__name__
            raise ExperimentError(
                f"Cannot create env {env!r} to read its agent ids: {message}"
            ) from None
        try:
            agents = getattr(instance, "possible_agents", None)
        finally:
            close = getattr(instance, "close", None)
            if callable(close):
                close()
        if agents is None:
            return None
        found = (found or set()) | {str(a) for a in agents}
    return sorted(found or ())


def multi_agent_settings(spec: Any, env: Any, env_config: Any, where: str = "") -> dict:
    """Turns the YAML ``multi_agent`` convention into ``config.multi_agent(...)`` arguments.

    ``policy_mapping``:

    - ``shared`` (default): one policy for all agents, named by ``policies`` (one id, default
      ``shared``) - parameter sharing;
    - ``per_agent``: one policy per agent, named like the agent (``policies`` defaults to the
      env's agent ids);
    - a mapping ``{agent_id: policy_id}``.

    ``policies_to_train`` (optional) is passed through.
    """
    if not isinstance(spec, Mapping):
        raise ExperimentError(
            f"`multi_agent`{where} must be a mapping such as "
            "{policy_mapping: shared} or {policy_mapping: per_agent}, got "
            f"{spec!r}."
        )
    unknown = set(spec) - {"policies", "policy_mapping", "policies_to_train"}
    if unknown:
        key = sorted(unknown)[0]
        hint = _did_you_mean(key, ["policies", "policy_mapping", "policies_to_train"])
        raise ExperimentError(f"Unknown `multi_agent` key {key!r}{where}.{hint}")
    mapping = spec.get("policy_mapping", "shared")
    policies = spec.get("policies")
    if policies is not None and (
        not isinstance(policies, (list, tuple)) or not all(isinstance(p, str) for p in policies)
    ):
        raise ExperimentError(f"`multi_agent.policies`{where} must be a list of names.")
    if mapping == "shared":
        policies = list(policies or ["shared"])
        if len(policies) != 1:
            raise ExperimentError(
                f"`multi_agent.policy_mapping: shared`{where} maps all agents to one policy, "
                f"but {len(policies)} policies are listed: {policies}."
            )
        fn: Any = SharedPolicyMapping(policies[0])
    elif mapping == "per_agent":
        agents = env_agent_ids(env, env_config) if isinstance(env, str) else None
        if policies is None:
            if agents is None:
                raise ExperimentError(
                    f"`multi_agent.policy_mapping: per_agent`{where} needs the agent ids: list "
                    "them under `multi_agent.policies`."
                )
            policies = agents
        elif agents is not None and sorted(set(agents) - set(policies)):
            missing = sorted(set(agents) - set(policies))
            raise ExperimentError(
                f"`multi_agent.policy_mapping: per_agent`{where} names one policy per agent, "
                f"but agents {missing} of env {env!r} have none in `policies`."
            )
        fn = PerAgentPolicyMapping()
    elif isinstance(mapping, Mapping):
        fn = TablePolicyMapping(mapping)
        policies = list(policies or sorted(set(fn.table.values())))
        missing = sorted(set(fn.table.values()) - set(policies))
        if missing:
            raise ExperimentError(
                f"`multi_agent.policy_mapping`{where} uses policies {missing} that are not in "
                "`multi_agent.policies`."
            )
    else:
        raise ExperimentError(
            f"`multi_agent.policy_mapping`{where} must be 'shared', 'per_agent' or a mapping "
            f"{{agent_id: policy_id}}, got {mapping!r}."
        )
    out: dict[str, Any] = {"policies": sorted(policies), "policy_mapping_fn": fn}
    if spec.get("policies_to_train") is not None:
        out["policies_to_train"] = list(spec["policies_to_train"])
    return out


# --- Search spaces ---------------------------------------------------------------------------


def _is_search_space(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and len(value) == 1
        and next(iter(value)) in (*SEARCH_SPACES, "grid_search")
    )


def _search_space(value: Mapping[str, Any], path: str) -> Any:
    """A Tune search space from its one-key YAML form (``grid_search`` stays a dict)."""
    from ray import tune

    kind, args = next(iter(value.items()))
    if kind in ("grid_search", "choice"):
        if not isinstance(args, list) or not args:
            raise ExperimentError(f"`{path}: {{{kind}: ...}}` needs a non-empty list of values.")
        return {"grid_search": args} if kind == "grid_search" else tune.choice(args)
    n = SEARCH_SPACES[kind]
    if (
        not isinstance(args, list)
        or len(args) != n
        or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
    ):
        names = {2: "[low, high]", 3: "[low, high, q]"}
        shape = "[mean, sd]" if kind == "randn" else "[mean, sd, q]" if kind == "qrandn" else None
        raise ExperimentError(
            f"`{path}: {{{kind}: ...}}` needs a list {shape or names[n]} of numbers, got {args!r}."
        )
    try:
        return getattr(tune, kind)(*args)
    except Exception as exc:  # noqa: BLE001 - Tune's own range checks.
        raise ExperimentError(f"`{path}: {{{kind}: {args}}}`: {exc}") from None


def to_param_space(value: Any, path: str = "config") -> Any:
    """Converts the YAML search-space forms in ``value`` (recursively) into Tune's."""
    if _is_search_space(value):
        return _search_space(value, path)
    if isinstance(value, Mapping):
        return {k: to_param_space(v, f"{path}.{k}") for k, v in value.items()}
    return value


def _variants(space: Any) -> Iterator[Any]:
    """Representative samples of a param space for validation.

    First the sample that takes every search space at its first value (Tune domains at their
    lower bound or first category); then, for each grid search, each of its other values with
    the rest left at the first.
    """
    from ray.tune.search.sample import Categorical, Domain

    def first(v: Any) -> Any:
        if isinstance(v, Mapping) and set(v) == {"grid_search"}:
            return first(v["grid_search"][0])
        if isinstance(v, Categorical):
            return first(v.categories[0])
        if isinstance(v, Domain):
            lower = getattr(v, "lower", None)
            return lower if lower is not None else v.sample()
        if isinstance(v, Mapping):
            return {k: first(x) for k, x in v.items()}
        return v

    base = first(space)
    yield base

    def grids(v: Any, path: tuple) -> Iterator[tuple[tuple, list]]:
        if isinstance(v, Mapping) and set(v) == {"grid_search"}:
            yield path, v["grid_search"]
        elif isinstance(v, Mapping):
            for k, x in v.items():
                yield from grids(x, (*path, k))

    for path, values in grids(space, ()):
        for value in values[1:]:
            variant = copy.deepcopy(base)
            node = variant
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = first(value)
            yield variant


# --- Experiments ---------------------------------------------------------------------------------


@dataclass
class Overrides:
    """Command-line settings that take precedence over the experiment file."""

    config: dict[str, Any] = field(default_factory=dict)
    stop: dict[str, Any] = field(default_factory=dict)
    num_samples: int | None = None
    checkpoint_freq: int | None = None
    checkpoint_at_end: bool | None = None
    storage_path: str | None = None


@dataclass
class Experiment:
    """One experiment, ready for ``tune.Tuner(run, param_space=param_space, ...)``."""

    name: str
    run: str
    algo_class: type
    stop: dict[str, Any]
    param_space: dict[str, Any]
    num_samples: int = 1
    checkpoint_freq: int = 0
    checkpoint_at_end: bool = True
    storage_path: str | None = None

    @property
    def env(self) -> Any:
        return self.param_space.get("env")

    def sample_config(self) -> dict[str, Any]:
        """The param space with every search space at its first value."""
        return next(_variants(self.param_space))

    def algorithm_config(self, sample: Mapping[str, Any] | None = None) -> Any:
        """An AlgorithmConfig built from a sample of the param space (not validated)."""
        sample = self.sample_config() if sample is None else sample
        default = self.algo_class.get_default_config()
        return default.update_from_dict(copy.deepcopy(dict(sample)))

    def cpus_per_trial(self) -> float:
        """The most CPUs one trial asks Tune for (driver, EnvRunners, Learners), over samples."""
        most = 0.0
        for sample in itertools.islice(_variants(self.param_space), MAX_VALIDATED_VARIANTS):
            request = self.algo_class.default_resource_request(self.algorithm_config(sample))
            most = max(most, float(request.required_resources.get("CPU", 0.0)))
        return most

    def validate(self) -> None:
        """Runs the algorithm config's ``validate()`` on representative samples.

        A built-in env's ``env_config`` is checked first (:func:`check_builtin_env_config`),
        for every algorithm: RLlib's own (PPO, ...) create no env on the driver, so a bad
        value would otherwise only fail the trial, on a remote worker.
        """
        where = f" in experiment {self.name!r}"
        for sample in itertools.islice(_variants(self.param_space), MAX_VALIDATED_VARIANTS):
            check_builtin_env_config(sample.get("env"), sample.get("env_config"), where)
            try:
                self.algorithm_config(sample).validate()
            except ExperimentError:
                raise
            except Exception as exc:  # noqa: BLE001 - any config error is bad input here.
                message = " ".join(str(exc).split()) or type(exc).__name__
                if len(message) > MAX_VALIDATION_ERROR_CHARS:
                    message = message[:MAX_VALIDATION_ERROR_CHARS] + " ..."
                raise ExperimentError(
                    f"Invalid config for {self.run} in experiment {self.name!r}: {message}"
                ) from exc


def check_builtin_env_config(env: Any, env_config: Any, where: str = "") -> None:
    """Checks the ``env_config`` of a built-in env against the keys it declares.

    Uses the env class's ``CONFIG_KEYS`` without creating the env, so it is cheap and has no
    side effects. Other envs (gymnasium ids, the user's own) are left to their constructors.
    A built-in env whose optional dependencies are missing is reported here too, before Ray
    starts, with the extra to install.
    """
    from rllib_marl_meta.envs import BUILTIN_ENVS, env_class
    from rllib_marl_meta.envs._config import read_env_config

    if not isinstance(env, str) or env not in BUILTIN_ENVS:
        return
    try:
        keys = getattr(env_class(env), "CONFIG_KEYS", None)
    except ImportError as exc:
        raise ExperimentError(
            f"Cannot use env {env!r}{where}: {' '.join(str(exc).split())}"
        ) from None
    if keys is None:
        return
    if env_config is not None and not isinstance(env_config, Mapping):
        raise ExperimentError(
            f"`env_config`{where} must be a mapping such as {{horizon: 100}}, got {env_config!r}."
        )
    try:
        read_env_config(env, env_config, keys)
    except ValueError as exc:
        raise ExperimentError(f"Invalid env_config{where}: {exc}") from None


def _int_setting(value: Any, key: str, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ExperimentError(f"`{key}`{where} must be an integer >= {minimum}, got {value!r}.")
    return value


STOP_EXAMPLE = "--stop '{\"training_iteration\": 100}'"


def check_stop(
    file_stop: Mapping[str, Any], override_stop: Mapping[str, Any], where: str = ""
) -> dict[str, Any]:
    """The stop criteria of the file with the command line's merged in (flat keys).

    A ``null`` override removes a criterion of the file. What remains must be at least one
    criterion, each a finite number: without a criterion, or with a NaN threshold (never
    reached) or an infinite one (never reached, or reached at once), a Tune trial runs forever
    or not at all, so both are bad input rather than something to find out hours later.
    """
    stop = dict(file_stop)
    removed = []
    for key, value in override_stop.items():
        if value is None:
            removed.append(key)
            stop.pop(key, None)  # `--stop '{"key": null}'` removes a criterion of the file.
        else:
            stop[key] = value
    for key, value in stop.items():
        if value is None:
            raise ExperimentError(
                f"Stop criterion {key!r}{where} is null: give it a number, or leave it out."
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ExperimentError(f"Stop criterion {key!r}{where} must be a number, got {value!r}.")
        if not math.isfinite(value):
            raise ExperimentError(
                f"Stop criterion {key!r}{where} must be a finite number, got {value!r}: a NaN "
                "or infinite threshold never stops a trial (or stops it at once). Give a "
                f"number, e.g. --stop '{{\"{key}\": 100}}'."
            )
    if not stop:
        cause = f" (--stop removed {', '.join(repr(k) for k in removed)})" if removed else ""
        raise ExperimentError(
            f"No stop criterion{where}{cause}: its trials would never stop. Add one under "
            f"`stop:` in the experiment file or on the command line, e.g. {STOP_EXAMPLE}."
        )
    return stop


def build_experiment(
    name: str, spec: Any, overrides: Overrides | None = None, validate: bool = True
) -> Experiment:
    """Checks one experiment of a file and applies the overrides (CLI > file)."""
    overrides = overrides or Overrides()
    where = f" in experiment {name!r}"
    if not isinstance(spec, Mapping):
        raise ExperimentError(
            f"Experiment {name!r} must be a mapping with keys env, run, stop, config; "
            f"got {type(spec).__name__}."
        )
    for key in spec:
        if key not in EXPERIMENT_KEYS:
            raise ExperimentError(
                f"Unknown key {key!r}{where}.{_did_you_mean(key, list(EXPERIMENT_KEYS))} "
                f"Allowed: {', '.join(EXPERIMENT_KEYS)}."
            )
    if "run" not in spec:
        raise ExperimentError(f"Missing `run:`{where} (the algorithm, e.g. run: MAML).")
    run = spec["run"]
    algo_cls = algorithm_class(run, where)

    file_config = spec.get("config") or {}
    if not isinstance(file_config, Mapping):
        raise ExperimentError(f"`config`{where} must be a mapping, got {file_config!r}.")
    if spec.get("env") is not None:
        file_config = {**file_config, "env": spec["env"]}
    config = deep_merge(file_config, overrides.config)
    check_env(config.get("env"), where)
    check_config_keys(algo_cls, config, where)

    # Our aliases -> what `AlgorithmConfig.update_from_dict` understands.
    if "model_config" in config:
        if not isinstance(config["model_config"] or {}, Mapping):
            raise ExperimentError(
                f"`model_config`{where} must be a mapping such as {{fcnet_hiddens: [64, 64]}}, "
                f"got {config['model_config']!r}."
            )
        config["_model_config"] = deep_merge(
            config.get("_model_config") or {}, config.pop("model_config") or {}
        )
    if "multi_agent" in config:
        config["multiagent"] = multi_agent_settings(
            config.pop("multi_agent"), config.get("env"), config.get("env_config"), where
        )
    param_space = to_param_space(config)

    stop = spec.get("stop") or {}
    if not isinstance(stop, Mapping):
        raise ExperimentError(f"`stop`{where} must be a mapping of result keys to values.")
    stop = check_stop(flatten_stop(stop), flatten_stop(overrides.stop), where)

    checkpoint_config = spec.get("checkpoint_config") or {}
    if not isinstance(checkpoint_config, Mapping):
        raise ExperimentError(f"`checkpoint_config`{where} must be a mapping.")
    freq = _first(
        overrides.checkpoint_freq,
        spec.get("checkpoint_freq"),
        checkpoint_config.get("checkpoint_frequency"),
        0,
    )
    at_end = _first(
        overrides.checkpoint_at_end,
        spec.get("checkpoint_at_end"),
        checkpoint_config.get("checkpoint_at_end"),
        True,
    )
    if not isinstance(at_end, bool):
        raise ExperimentError(f"`checkpoint_at_end`{where} must be true or false.")
    experiment = Experiment(
        name=str(name),
        run=str(run),
        algo_class=algo_cls,
        stop=stop,
        param_space=param_space,
        num_samples=_int_setting(
            _first(overrides.num_samples, spec.get("num_samples"), 1), "num_samples", where, 1
        ),
        checkpoint_freq=_int_setting(freq, "checkpoint_freq", where, 0),
        checkpoint_at_end=at_end,
        storage_path=_first(
            overrides.storage_path, spec.get("storage_path"), spec.get("local_dir")
        ),
    )
    if validate:
        experiment.validate()
    return experiment


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def load_experiments(
    path: str | Path, overrides: Overrides | None = None, validate: bool = True
) -> list[Experiment]:
    """Loads, checks and overrides every experiment in a YAML file (see the module docstring)."""
    data = load_yaml_file(path)
    return [build_experiment(name, spec, overrides, validate) for name, spec in data.items()]
