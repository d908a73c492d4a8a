"""Experiment files: the YAML format of RLlib's old tuned examples, checked and made ready for Tune.

A file maps experiment names (Tune's run names) to experiments::

    maml-pointnav:
      env: PointNavigation2D        # registered env name, gymnasium id or "module.Class"
      run: MAML                     # any registered algorithm: MAML, RL2, PPO, ...
      stop:                         # Tune stop criteria, nested or flat ("a/b")
        env_runners/num_env_steps_sampled_lifetime: 2000000
      config:                       # the algorithm config as a dict (AlgorithmConfig keys)
        env_config: {horizon: 100}
        inner_lr: {grid_search: [0.05, 0.1]}
        model_config: {fcnet_hiddens: [64, 64]}
        multi_agent: {policy_mapping: per_agent}  # or shared, or {agent_id: policy_id}
      # optional: num_samples, checkpoint_freq, checkpoint_at_end, checkpoint_config, storage_path

Search spaces are one-key mappings: ``grid_search`` or ``choice`` with a list, or one of the
Tune domains of ``SEARCH_SPACES`` (``{uniform: [low, high]}``, ...). Everything is checked before
Ray starts, down to the algorithm config's ``validate()`` on samples of the search space; bad
input raises :class:`ExperimentError` with a one-line message.
"""

from __future__ import annotations

import copy
import difflib
import inspect
import itertools
import json
import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ray import tune
from ray.tune.search.sample import Categorical
from ray.tune.search.variant_generator import assign_value, generate_variants, parse_spec_vars
from ray.tune.utils.util import deep_update, flatten_dict

from rllib_marl_meta.envs.creation import check_builtin_env_config, check_env_name, env_agent_ids

EXPERIMENT_KEYS = ("env", "run", "stop", "config", "num_samples", "checkpoint_freq")
EXPERIMENT_KEYS += ("checkpoint_at_end", "checkpoint_config", "storage_path", "local_dir")
# Tune domains accepted as one-key mappings in `config`, with their arguments.
SEARCH_SPACES = {"uniform": "low, high", "quniform": "low, high, q", "loguniform": "low, high"}
SEARCH_SPACES |= {"qloguniform": "low, high, q", "randint": "low, high", "qrandint": "low, high, q"}
SEARCH_SPACES |= {"randn": "mean, sd", "qrandn": "mean, sd, q"}
# Config keys that are no AlgorithmConfig attributes: ours, or understood by `update_from_dict`.
EXTRA_CONFIG_KEYS = {"multi_agent", "multiagent", "env", "model_config"}
MAX_VALIDATED_VARIANTS = 20  # Samples of a search space checked at most.
STOP_EXAMPLE = "--stop '{\"training_iteration\": 100}'"


class ExperimentError(ValueError):
    """Bad user input: an experiment file, an override or a checkpoint. One-line message."""


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, but ``1e6`` is a float (PyYAML reads it as a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def _load_yaml(text: str, where: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader.
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        position = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ExperimentError(f"Malformed YAML in {where}{position}: {problem}.") from None


def load_yaml_file(path: str | Path) -> dict[str, Any]:
    """Reads an experiment file; the top level must map experiment names to experiments."""
    path = Path(path)
    if not path.is_file():
        problem = "is not a file" if path.exists() else "not found"
        raise ExperimentError(f"Experiment file {problem}: {path}.")
    try:
        data = _load_yaml(path.read_text(), str(path))
    except UnicodeDecodeError as exc:
        raise ExperimentError(f"Experiment file {path} is not UTF-8 text ({exc.reason}).") from None
    if not isinstance(data, dict) or not data:
        raise ExperimentError(
            f"Experiment file {path} must map experiment names to {{env, run, stop, config}}; it "
            f"holds {'nothing' if data is None else type(data).__name__}."
        )
    return data


def parse_override(text: str | None, option: str) -> dict[str, Any]:
    """Parses a ``--config``/``--stop`` value: a JSON or YAML mapping."""
    if text is None or not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = _load_yaml(text, option)
    if not isinstance(value, dict):
        raise ExperimentError(
            f"{option} takes a JSON or YAML mapping such as '{{\"key\": 1}}', got {text!r}."
        )
    return value


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` merged in by Tune's ``deep_update``; the inputs stay as they are.

    A search space (``{grid_search: ...}``, ...) is a value: it replaces, or is replaced, whole.
    """

    def drop_replaced(old: dict, new: Mapping) -> None:
        for key, value in new.items():
            if _is_search_space(old.get(key)) or _is_search_space(value):
                old.pop(key, None)
            elif isinstance(old.get(key), dict) and isinstance(value, Mapping):
                drop_replaced(old[key], value)

    out = copy.deepcopy(dict(base))
    drop_replaced(out, override)
    return deep_update(out, copy.deepcopy(dict(override)), new_keys_allowed=True)


def _did_you_mean(word: Any, candidates: Any) -> str:
    if not isinstance(word, str):
        return ""
    by_lower = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return f" Did you mean {by_lower[match[0]]!r}?" if match else ""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# --- Algorithms and config keys ------------------------------------------------------------------


def algorithm_class(run: Any, where: str = "") -> type:
    """The Algorithm class Tune runs for ``run`` (MAML, RL2, RLlib's PPO, ...)."""
    from ray.rllib.algorithms.algorithm import Algorithm
    from ray.rllib.algorithms.registry import ALGORITHMS as RLLIB
    from ray.tune.error import TuneError
    from ray.tune.registry import get_trainable_cls

    from rllib_marl_meta import ALGORITHMS as OURS

    try:
        with warnings.catch_warnings():  # Registering RLlib's algorithms makes gymnasium warn.
            warnings.simplefilter("ignore")
            cls = get_trainable_cls(run) if isinstance(run, str) else None
    except TuneError:
        cls = None
    if isinstance(cls, type) and issubclass(cls, Algorithm):
        return cls
    known = [*OURS, *(name for name in RLLIB if not name.startswith("_"))]
    raise ExperimentError(
        f"Unknown algorithm (run: {run!r}){where}.{_did_you_mean(run, known)} "
        f"Meta-RL algorithms: {', '.join(sorted(OURS))}; RLlib's also work (PPO, APPO, ...)."
    )


def check_config_keys(algo_cls: type, config: Mapping[str, Any], where: str = "") -> None:
    """Rejects keys the algorithm's config doesn't know, suggesting the nearest valid one.

    Old keys that ``update_from_dict`` translates (``lambda``, ``num_workers``, ...) pass.
    """
    from ray.rllib.algorithms.algorithm_config import AlgorithmConfig

    default = algo_cls.get_default_config()
    setters = inspect.getmembers(type(default), lambda m: isinstance(m, property) and m.fset)
    valid = set(vars(default)) | {name for name, _ in setters} | EXTRA_CONFIG_KEYS
    for key in config:
        if key == "model":
            raise ExperimentError(
                f"Config key 'model'{where} is the old API stack's model dict, which RLlib's "
                "new API stack ignores; use 'model_config' "
                "(e.g. model_config: {fcnet_hiddens: [64, 64]})."
            )
        if AlgorithmConfig._translate_special_keys(key, warn_deprecated=False) not in valid:
            hint = _did_you_mean(key, [k for k in valid if not k.startswith("_")]) or (
                " See the keyword arguments of the config class's training(), environment(), "
                "env_runners(), learners() ... methods."
            )
            raise ExperimentError(
                f"Unknown config key {key!r} for {algo_cls.__name__}{where}.{hint}"
            )


# --- Multi-agent in YAML -------------------------------------------------------------------------


@dataclass(eq=False)
class SharedPolicyMapping:
    """Policy mapping fn: every agent uses the one policy ``policy_id``. Picklable."""

    policy_id: str

    def __call__(self, agent_id: Any, *args: Any, **kwargs: Any) -> str:
        return self.policy_id


@dataclass(eq=False)
class PerAgentPolicyMapping:
    """Policy mapping fn: each agent has its own policy, named like the agent. Picklable."""

    def __call__(self, agent_id: Any, *args: Any, **kwargs: Any) -> str:
        return str(agent_id)


@dataclass(eq=False)
class TablePolicyMapping:
    """Policy mapping fn from a fixed ``{agent_id: policy_id}`` table. Picklable."""

    table: dict[str, str]

    def __call__(self, agent_id: Any, *args: Any, **kwargs: Any) -> str:
        try:
            return self.table[str(agent_id)]
        except KeyError:
            raise KeyError(
                f"Agent {agent_id!r} is missing from the multi_agent policy_mapping table "
                f"{self.table}."
            ) from None


def multi_agent_settings(spec: Any, env: str, env_config: Any, where: str = "") -> dict:
    """The YAML ``multi_agent`` convention as ``config.multi_agent(...)`` arguments.

    ``policy_mapping``: ``shared`` (default; one policy, named by ``policies`` or ``shared``),
    ``per_agent`` (a policy per agent, named like it; ``policies`` defaults to the agent ids
    over the variants of ``env_config``) or ``{agent_id: policy_id}``. ``policies_to_train``
    passes through.
    """
    keys = ["policies", "policy_mapping", "policies_to_train"]
    if not isinstance(spec, Mapping):
        raise ExperimentError(
            f"`multi_agent`{where} must be a mapping such as {{policy_mapping: shared}} or "
            f"{{policy_mapping: per_agent}}, got {spec!r}."
        )
    for key in spec:
        if key not in keys:
            raise ExperimentError(
                f"Unknown `multi_agent` key {key!r}{where}.{_did_you_mean(key, keys)}"
            )
    mapping, policies = spec.get("policy_mapping", "shared"), spec.get("policies")
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
        configs = [v["env_config"] for v in variants({"env_config": env_config or {}})]
        try:
            agents = env_agent_ids(env, configs)
        except ValueError as exc:
            raise ExperimentError(str(exc)) from None
        if policies is None and agents is None:
            raise ExperimentError(
                f"`multi_agent.policy_mapping: per_agent`{where} needs the agent ids: list them "
                "under `multi_agent.policies`."
            )
        policies = agents if policies is None else policies
        missing = sorted(set(agents or ()) - set(policies))
        if missing:
            raise ExperimentError(
                f"`multi_agent.policy_mapping: per_agent`{where} names one policy per agent, "
                f"but agents {missing} of env {env!r} have none in `policies`."
            )
        fn = PerAgentPolicyMapping()
    elif isinstance(mapping, Mapping):
        fn = TablePolicyMapping({str(k): str(v) for k, v in mapping.items()})
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


# --- Search spaces -------------------------------------------------------------------------------


def _is_search_space(value: Any) -> bool:
    return (
        isinstance(value, Mapping)
        and len(value) == 1
        and next(iter(value)) in (*SEARCH_SPACES, "grid_search", "choice")
    )


def to_param_space(value: Any, path: str = "config") -> Any:
    """``value`` with its YAML search spaces (recursively) turned into Tune's."""
    if not _is_search_space(value):
        if isinstance(value, Mapping):
            return {k: to_param_space(v, f"{path}.{k}") for k, v in value.items()}
        return value
    ((kind, args),) = value.items()
    if kind in ("grid_search", "choice"):
        if not isinstance(args, list) or not args:
            raise ExperimentError(f"`{path}: {{{kind}: ...}}` needs a non-empty list of values.")
        return tune.grid_search(args) if kind == "grid_search" else tune.choice(args)
    names = SEARCH_SPACES[kind]
    if (
        not isinstance(args, list)
        or len(args) != names.count(",") + 1
        or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args)
    ):
        raise ExperimentError(
            f"`{path}: {{{kind}: ...}}` needs a list [{names}] of numbers, got {args!r}."
        )
    try:
        return getattr(tune, kind)(*args)
    except Exception as exc:  # noqa: BLE001 - Tune's own range checks.
        raise ExperimentError(f"`{path}: {{{kind}: {args}}}`: {exc}") from None


def variants(space: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Samples of a param space for checks before Ray starts: every value of every grid search
    (and every category of a ``choice``) in at least one sample, at most
    ``MAX_VALIDATED_VARIANTS`` samples. Other domains are sampled with a fixed seed.

    The samples come from Tune's variant generator; of its grid combinations, those that bring
    a grid value not seen yet are kept.
    """
    space = copy.deepcopy(dict(space))
    for path, domain in parse_spec_vars(space)[1]:
        if isinstance(domain, Categorical):
            assign_value(space, path, tune.grid_search(domain.categories))
    grid_paths = [path for path, _ in parse_spec_vars(space)[2]]
    seen: set[tuple[Any, str]] = set()
    chosen: list[dict[str, Any]] = []
    for resolved, sample in itertools.islice(generate_variants(space, random_state=0), 10_000):
        new = {(path, repr(resolved[path])) for path in grid_paths} - seen
        if not chosen or new:
            chosen.append(sample)
            seen |= new
        if len(chosen) >= MAX_VALIDATED_VARIANTS:
            break
    return chosen


# --- Experiments ---------------------------------------------------------------------------------


@dataclass
class Overrides:
    """Command-line settings; they take precedence over the experiment file's."""

    config: dict[str, Any] = field(default_factory=dict)
    stop: dict[str, Any] = field(default_factory=dict)
    num_samples: int | None = None
    checkpoint_freq: int | None = None
    checkpoint_at_end: bool | None = None
    storage_path: str | None = None


@dataclass
class Experiment:
    """One checked experiment, ready for ``tune.Tuner(run, param_space=param_space, ...)``."""

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
        """The param space with every grid search and choice at its first value."""
        return variants(self.param_space)[0]

    def algorithm_config(self, sample: Mapping[str, Any] | None = None) -> Any:
        """An AlgorithmConfig from a sample of the param space (default: the first); unchecked."""
        sample = self.sample_config() if sample is None else sample
        return self.algo_class.get_default_config().update_from_dict(copy.deepcopy(dict(sample)))

    def configs(self) -> list[Any]:
        """The AlgorithmConfigs of the param space's :func:`variants`."""
        return [self.algorithm_config(sample) for sample in variants(self.param_space)]

    def cpus_per_trial(self) -> float:
        """The most CPUs one trial asks Tune for (driver, EnvRunners, Learners)."""
        request = self.algo_class.default_resource_request
        return max(float(request(c).required_resources.get("CPU", 0.0)) for c in self.configs())

    def validate(self) -> None:
        """Checks each variant: a built-in env's ``env_config``, then ``config.validate()``."""
        where = f" in experiment {self.name!r}"
        for sample in variants(self.param_space):
            try:
                check_builtin_env_config(sample.get("env"), sample.get("env_config"))
            except ImportError as exc:
                raise ExperimentError(
                    f"Cannot use env {sample.get('env')!r}{where}: {_one_line(exc)}"
                ) from None
            except ValueError as exc:
                raise ExperimentError(f"Invalid env_config{where}: {exc}") from None
            try:
                self.algorithm_config(sample).validate()
            except Exception as exc:  # noqa: BLE001 - any config error is bad input here.
                message = _one_line(exc)
                message = message if len(message) <= 400 else message[:400] + " ..."
                raise ExperimentError(f"Invalid config for {self.run}{where}: {message}") from exc


def check_stop(
    file_stop: Mapping[str, Any], override_stop: Mapping[str, Any], where: str = ""
) -> dict[str, Any]:
    """The file's stop criteria (flat keys) with the command line's merged in.

    A null override removes a criterion. At least one must remain, each a finite number: with
    none, or a NaN or infinite threshold, a trial runs forever or not at all.
    """
    removed = [key for key, value in override_stop.items() if value is None]
    stop = {k: v for k, v in {**file_stop, **override_stop}.items() if k not in removed}
    for key, value in stop.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ExperimentError(f"Stop criterion {key!r}{where} must be a number, got {value!r}.")
        if not math.isfinite(value):
            raise ExperimentError(
                f"Stop criterion {key!r}{where} must be a finite number, got {value!r}: a NaN "
                "or infinite threshold never stops a trial (or stops it at once). Give a "
                f"number, e.g. --stop '{{\"{key}\": 100}}'."
            )
    if not stop:
        cause = f" (--stop removed {', '.join(map(repr, removed))})" if removed else ""
        raise ExperimentError(
            f"No stop criterion{where}{cause}: its trials would never stop. Add one under "
            f"`stop:` in the experiment file or on the command line, e.g. {STOP_EXAMPLE}."
        )
    return stop


def _first(*values: Any) -> Any:
    return next((v for v in values if v is not None), None)


def build_experiment(
    name: str, spec: Any, overrides: Overrides | None = None, validate: bool = True
) -> Experiment:
    """Checks one experiment of a file, with the command line's overrides applied."""
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
                f"Unknown key {key!r}{where}.{_did_you_mean(key, EXPERIMENT_KEYS)} "
                f"Allowed: {', '.join(EXPERIMENT_KEYS)}."
            )
    if "run" not in spec:
        raise ExperimentError(f"Missing `run:`{where} (the algorithm, e.g. run: MAML).")
    algo_cls = algorithm_class(spec["run"], where)

    file_config = spec.get("config") or {}
    if not isinstance(file_config, Mapping):
        raise ExperimentError(f"`config`{where} must be a mapping, got {file_config!r}.")
    if spec.get("env") is not None:
        file_config = {**file_config, "env": spec["env"]}
    config = deep_merge(file_config, overrides.config)
    if config.get("env") is None:
        raise ExperimentError(f"No env given{where}: set `env:` (e.g. env: PointNavigation2D).")
    try:
        check_env_name(config["env"], where)
    except ValueError as exc:
        raise ExperimentError(str(exc)) from None
    check_config_keys(algo_cls, config, where)
    space = to_param_space(config)
    for key, example in (
        ("env_config", "{horizon: 100}"),
        ("model_config", "{fcnet_hiddens: [64, 64]}"),
    ):
        if not isinstance(space.get(key) or {}, Mapping):
            raise ExperimentError(
                f"`{key}`{where} must be a mapping such as {example}, got {space[key]!r}."
            )
    if "model_config" in space:  # The key that `AlgorithmConfig.update_from_dict` understands.
        model_config = space.pop("model_config") or {}
        space["_model_config"] = deep_merge(space.get("_model_config") or {}, model_config)
    if "multi_agent" in space:
        space["multiagent"] = multi_agent_settings(
            space.pop("multi_agent"), space["env"], space.get("env_config"), where
        )

    stop = spec.get("stop") or {}
    if not isinstance(stop, Mapping):
        raise ExperimentError(f"`stop`{where} must be a mapping of result keys to values.")
    stop = check_stop(flatten_dict(dict(stop)), flatten_dict(overrides.stop), where)
    checkpoint = spec.get("checkpoint_config") or {}
    if not isinstance(checkpoint, Mapping):
        raise ExperimentError(f"`checkpoint_config`{where} must be a mapping.")
    fallback = {  # Command line > experiment > its checkpoint_config > default.
        "num_samples": 1,
        "checkpoint_freq": _first(checkpoint.get("checkpoint_frequency"), 0),
        "checkpoint_at_end": _first(checkpoint.get("checkpoint_at_end"), True),
        "storage_path": spec.get("local_dir"),
    }
    settings = {k: _first(getattr(overrides, k), spec.get(k), v) for k, v in fallback.items()}
    if not isinstance(settings["checkpoint_at_end"], bool):
        raise ExperimentError(f"`checkpoint_at_end`{where} must be true or false.")
    for key, low in (("num_samples", 1), ("checkpoint_freq", 0)):
        if (
            isinstance(settings[key], bool)
            or not isinstance(settings[key], int)
            or settings[key] < low
        ):
            raise ExperimentError(
                f"`{key}`{where} must be an integer >= {low}, got {settings[key]!r}."
            )
    experiment = Experiment(str(name), str(spec["run"]), algo_cls, stop, space, **settings)
    if validate:
        experiment.validate()
    return experiment


def load_experiments(
    path: str | Path, overrides: Overrides | None = None, validate: bool = True
) -> list[Experiment]:
    """Loads and checks every experiment of a YAML file, with the overrides applied."""
    return [build_experiment(n, s, overrides, validate) for n, s in load_yaml_file(path).items()]
