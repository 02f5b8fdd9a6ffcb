"""Checking a model config's values against its class before the model is built.

A diffusers ``ConfigMixin`` class takes its config as constructor arguments and checks none of them: a
``config.json`` (or a recipe's ``model.backbone``) with ``num_layers: -3`` builds a model with no blocks, and
``hidden_size: "abc"`` fails deep inside torch. :func:`check_config_values` checks each value against the
constructor's default, the one description of the expected type that every such class has: the same type (an
int where the default is an int, a finite number where it is a float, a list where it is a tuple), and an integer
whose default is positive stays positive (sizes, counts, dims), one whose default is 0 stays ≥ 0. Values whose
default is ``None`` or a string are not checked (their type is open). Written by hand: neither diffusers nor
transformers validates a config's values.
"""

from __future__ import annotations

import inspect
import math
from typing import Any

from anyframe.errors import AnyframeInputError


def _problem(value: Any, default: Any) -> str | None:
    """Why ``value`` cannot stand where ``default`` is the constructor's default (None: it can)."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be a whole number, got {value!r}"
        if default > 0 and value < 1:
            return f"must be ≥ 1, got {value}"
        if default == 0 and value < 0:
            return f"must be ≥ 0, got {value}"
        return None
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"must be a finite number, got {value!r}"
        if default > 0 and value <= 0:
            return f"must be > 0, got {value}"
        return None
    if isinstance(default, (tuple, list)) and default:
        if not isinstance(value, (tuple, list)):
            return f"must be a list like {list(default)}, got {value!r}"
        for item in value:
            reason = _problem(item, default[0])
            if reason:
                return f"holds {item!r}, which {reason.split(', got')[0]}"
        return None
    return None


def check_config_values(cls: type, values: dict, source: str) -> None:
    """Raise :class:`AnyframeInputError` naming ``source`` and the key if a value of ``values`` does not fit
    ``cls``'s constructor (see the module doc). Keys the constructor does not take are left to the caller."""
    try:
        parameters = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return
    for name, value in values.items():
        param = parameters.get(name)
        if param is None or param.default is inspect.Parameter.empty or param.default is None or value is None:
            continue
        reason = _problem(value, param.default)
        if reason:
            raise AnyframeInputError(f"{source}: {name} {reason}")


def unknown_keys(cls: type, values: dict) -> list[str]:
    """Keys of ``values`` that ``cls``'s constructor does not take (diffusers' own ``_``-prefixed keys aside)."""
    parameters = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return []
    return sorted(k for k in values if not k.startswith("_") and k not in parameters)
