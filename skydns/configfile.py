"""``--config FILE``: settings from a TOML file, read with the standard
library's `tomllib`.

Keys are the flags' names (``dns = "127.0.0.1:53"``, ``negative-ttl = 5``;
``negative_ttl`` works too); a value is what the flag would take, as a
string, a number, or a list of strings for the comma-separated flags
(``nameserver = ["10.0.0.1:53", "10.0.0.2:53"]``); an on/off flag takes
``true`` or ``false``.  Flags given on the command line win over the file.
An unknown key, a value of the wrong kind, or a file that is not TOML is
an error naming the key (or line): a typo must not pass silently.
"""

from __future__ import annotations

import tomllib
from collections.abc import Collection, Sequence
from typing import Optional, Union

Setting = Union[str, int]


def config_path(argv: Sequence[str]) -> Optional[str]:
    """The value of ``--config`` in ``argv`` (``--config F`` or
    ``--config=F``), the last one if given twice; None without one."""
    path = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--config" and i + 1 < len(argv):
            path = argv[i + 1]
        elif arg.startswith("--config="):
            path = arg[len("--config="):]
    return path


def read_settings(
    path: str, parameters: Collection[str], flags: Collection[str]
) -> dict[str, Setting]:
    """The settings in the TOML file at ``path``: each option's name with
    its value as the command line would give it (a string; 1 or 0 for a
    flag).  `ValueError` with the reason for anything else."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise ValueError(f"cannot read {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path} is not TOML: {e}") from None
    settings: dict[str, Setting] = {}
    for key, value in data.items():
        name = key.replace("_", "-")
        if name == "config":
            raise ValueError(f"{path}: config: a config file cannot name another")
        if name in flags:
            if type(value) is not bool:
                raise ValueError(f"{path}: {key}: must be true or false")
            settings[name] = int(value)
        elif name in parameters:
            settings[name] = _text(path, key, value)
        else:
            raise ValueError(f"{path}: {key}: no such setting (keys are the option names, "
                             "without the leading --)")  # fmt: skip
    return settings


def _text(path: str, key: str, value: object) -> str:
    """A value as the flag's text: strings as they are, whole numbers in
    decimal, lists of strings joined with commas."""
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    if type(value) is list and all(type(item) is str for item in value):
        return ",".join(value)
    raise ValueError(f"{path}: {key}: must be a string, a whole number or a list of strings")
