"""Checking an RLlib algorithm checkpoint's files before restoring from it.

``Algorithm.from_checkpoint`` reads a checkpoint directory that ``save_to_path`` (or Tune)
wrote: ``rllib_checkpoint.json`` and ``class_and_ctor_args.pkl`` at the top, the algorithm's
state file (``algorithm_state.pkl``), and one sub-directory per component (``env_runner/``,
``learner_group/learner/rl_module/<module_id>/`` ...), each with ``metadata.json``,
``class_and_ctor_args.pkl`` and a state file (``state.pkl``, ``module_state.pkl``, or
``.msgpack`` for msgpack checkpoints). A file cut short by a full disk, an interrupted copy
or a killed sync surfaces there as a bare ``UnpicklingError`` or ``JSONDecodeError`` from deep
inside RLlib, often on a remote worker, without naming the file. :func:`check_checkpoint_files`
reads every such file first and names the one that is broken.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Written by RLlib at the top of every new-API-stack algorithm checkpoint.
CHECKPOINT_INFO_FILE = "rllib_checkpoint.json"
CLASS_FILE = "class_and_ctor_args.pkl"
# A component's metadata; names its state file (without extension).
COMPONENT_METADATA_FILE = "metadata.json"
DEFAULT_ALGORITHM_STATE = "algorithm_state"
STATE_EXTENSIONS = (".pkl", ".msgpack")
ADVICE = "use another checkpoint (e.g. an earlier checkpoint_* of the trial) or save it again"


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated or otherwise unreadable. One-line message."""


def _load_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _load_pickle(path: Path) -> Any:
    with open(path, "rb") as f:
        return pickle.load(f)  # noqa: S301 - the user's own checkpoint, which RLlib unpickles too.


def _load_torch(path: Path) -> Any:
    import torch

    return torch.load(path, weights_only=False, map_location="cpu")


def _load_msgpack(path: Path) -> Any:
    from ray.rllib.utils.checkpoints import try_import_msgpack

    msgpack = try_import_msgpack(error=False)
    if msgpack is None:
        raise CheckpointError(
            f"Checkpoint file {path} is in msgpack format, which needs the msgpack and "
            "msgpack_numpy packages: pip install msgpack msgpack-numpy."
        )
    with open(path, "rb") as f:
        return msgpack.load(f, strict_map_key=False)


# File extension -> loader, as RLlib reads these files.
LOADERS: dict[str, Callable[[Path], Any]] = {
    ".json": _load_json,
    ".pkl": _load_pickle,
    ".pt": _load_torch,
    ".msgpack": _load_msgpack,
    ".msgpck": _load_msgpack,
}


def _reason(exc: BaseException) -> str:
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _read(path: Path) -> Any:
    """Loads one file with the loader of its extension; a failure names the file."""
    try:
        return LOADERS[path.suffix](path)
    except CheckpointError:
        raise
    except (ImportError, AttributeError) as exc:
        # Unpickling imports the classes the checkpoint refers to.
        raise CheckpointError(
            f"Checkpoint file {path} cannot be loaded here ({_reason(exc)}): it refers to code "
            "that is not importable; install the package it came from, or "
            f"{ADVICE}."
        ) from exc
    except Exception as exc:  # noqa: BLE001 - each loader has its own error types.
        raise CheckpointError(
            f"Checkpoint file {path} is unreadable, probably truncated or corrupt "
            f"({_reason(exc)}); {ADVICE}."
        ) from exc


def _require(path: Path, what: str) -> None:
    if not path.is_file():
        raise CheckpointError(
            f"Checkpoint file {path} is missing ({what}); the checkpoint is incomplete: {ADVICE}."
        )


def _state_file(directory: Path, stem: str, what: str) -> Path:
    """The state file ``stem.pkl`` or ``stem.msgpack`` of a component, which must exist."""
    for extension in STATE_EXTENSIONS:
        candidate = directory / f"{stem}{extension}"
        if candidate.is_file():
            return candidate
    names = " or ".join(f"{stem}{ext}" for ext in STATE_EXTENSIONS)
    raise CheckpointError(
        f"Checkpoint file {directory / names} is missing ({what}); the checkpoint is "
        f"incomplete: {ADVICE}."
    )


def _state_stem(info: Any, info_path: Path, default: str) -> str:
    stem = info.get("state_file", default) if isinstance(info, dict) else None
    if not isinstance(stem, str) or not stem:
        raise CheckpointError(
            f"Checkpoint file {info_path} has no valid 'state_file' entry (got {stem!r}); {ADVICE}."
        )
    return Path(stem).name


def check_checkpoint_files(path: str | Path) -> None:
    """Reads every file of an RLlib (new API stack) algorithm checkpoint; raises on a bad one.

    What: in ``path`` itself, ``rllib_checkpoint.json``, ``class_and_ctor_args.pkl`` and the
    algorithm's state file must exist; in every component directory below it that has a
    ``metadata.json``, the state file that metadata names must exist. Then every ``.json``,
    ``.pkl``, ``.pt`` and ``.msgpack`` file (hidden files excepted) is loaded with the loader
    RLlib uses for it (``json``, ``pickle``, ``torch.load`` on the CPU, msgpack).

    Why: a truncated or missing file otherwise fails deep inside ``Algorithm.from_checkpoint``,
    possibly on a remote worker, with an error that does not say which file is broken. This
    check raises :class:`CheckpointError` (a ``ValueError``) whose one-line message names the
    file, says what is wrong with it (the loader's reason) and suggests using another
    checkpoint. It loads each file once more than restoring does, which costs time for large
    checkpoints but nothing else; it does not check that the checkpoint fits the current code.
    """
    root = Path(path)
    if not root.is_dir():
        raise CheckpointError(
            f"Checkpoint {root} is not a directory (an RLlib algorithm checkpoint is one)."
        )
    info_path = root / CHECKPOINT_INFO_FILE
    _require(info_path, "every RLlib algorithm checkpoint has one")
    _require(root / CLASS_FILE, "the algorithm's class and constructor arguments")
    info = _read(info_path)
    _state_file(
        root, _state_stem(info, info_path, DEFAULT_ALGORITHM_STATE), "the algorithm's state"
    )
    for metadata_path in sorted(root.rglob(COMPONENT_METADATA_FILE)):
        if metadata_path.parent == root:
            continue
        metadata = _read(metadata_path)
        stem = _state_stem(metadata, metadata_path, "state")
        _state_file(metadata_path.parent, stem, f"the state of component {metadata_path.parent}")
    for file in sorted(root.rglob("*")):
        relative = file.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue  # Tune's and others' bookkeeping, which RLlib does not read.
        if file.is_file() and file.suffix in LOADERS:
            _read(file)


class CheckedCheckpointMixin:
    """Checks a local checkpoint's files before RLlib restores an algorithm from it.

    Mix in before the RLlib algorithm class (``class MAML(CheckedCheckpointMixin, Algorithm)``):
    ``from_checkpoint`` and ``restore_from_path`` then raise :class:`CheckpointError` naming a
    truncated or missing file instead of RLlib's bare ``UnpicklingError``. Remote (``s3://``
    ...) checkpoints and calls with a ``filesystem`` are passed through unchecked.
    """

    @classmethod
    def from_checkpoint(cls, path: Any, filesystem: Any = None, **kwargs: Any) -> Any:
        _check_if_local(path, filesystem)
        return super().from_checkpoint(path, filesystem=filesystem, **kwargs)

    def restore_from_path(self, path: Any, *args: Any, **kwargs: Any) -> None:
        _check_if_local(path, kwargs.get("filesystem"))
        return super().restore_from_path(path, *args, **kwargs)


def _check_if_local(path: Any, filesystem: Any) -> None:
    if filesystem is None and isinstance(path, (str, Path)) and "://" not in str(path):
        check_checkpoint_files(path)
