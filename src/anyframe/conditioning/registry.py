"""The one registry of conditioning methods: name → class, and the validation of a method's options.

A method registers itself where it is defined::

    @register_method
    class MyMethod(ConditioningMethod):
        name = "my_method"

Its *model options* are its constructor's arguments (saved in its config), less those it reads from the
backbone (``backbone_options``); a recipe gives them as ``conditioning: {method: my_method, <options>}``.
Its *request options* are its ``Options`` dataclass (``GenerationRequest.options``). An option meant for
another method is an error that names the method and its options.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Any

from pydantic import ConfigDict, ValidationError, create_model

from anyframe.conditioning.base import ConditioningMethod

METHODS: dict[str, type[ConditioningMethod]] = {}


def register_method(cls: type[ConditioningMethod]) -> type[ConditioningMethod]:
    """Register a :class:`ConditioningMethod` subclass under its ``name`` (a class decorator)."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    known = METHODS.get(cls.name)
    if known is not None and known.__qualname__ != cls.__qualname__:
        raise ValueError(f"two conditioning methods are named {cls.name!r}: {known.__name__} and {cls.__name__}")
    METHODS[cls.name] = cls
    return cls


def method_class(name: str) -> type[ConditioningMethod]:
    if name not in METHODS:
        raise ValueError(f"unknown conditioning method {name!r} ({', '.join(sorted(METHODS))})")
    return METHODS[name]


def method_by_class_name(class_name: str) -> type[ConditioningMethod]:
    """The registered method whose class is ``class_name`` (a saved config's ``_class_name``)."""
    for cls in METHODS.values():
        if cls.__name__ == class_name:
            return cls
    raise ValueError(f"unknown conditioning method class {class_name!r}")


def model_option_fields(cls: type[ConditioningMethod]) -> dict[str, tuple[Any, Any]]:
    """``{option: (type, default)}``: the constructor's arguments a recipe may set."""
    hints = typing.get_type_hints(cls.__init__)
    out = {}
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL) or name in cls.backbone_options:
            continue
        default = param.default if param.default is not inspect.Parameter.empty else ...
        out[name] = (hints.get(name, Any), default)
    return out


def _options_model(cls: type[ConditioningMethod]):
    fields = model_option_fields(cls)
    return create_model(f"{cls.__name__}Options", __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True),
                        **fields)


def validate_model_options(name: str, options: dict) -> dict:
    """The options of method ``name`` checked against its constructor (types, unknown keys), and then by
    the constructor itself; returns every option with its default filled in (a canonical record)."""
    cls = method_class(name)
    fields = model_option_fields(cls)
    unknown = sorted(set(options) - set(fields))
    if unknown:
        owners = {other for other, ocls in METHODS.items() if other != name
                  for key in unknown if key in model_option_fields(ocls)}
        where = f" (an option of {', '.join(sorted(owners))})" if owners else ""
        raise ValueError(f"{', '.join(unknown)} does not apply to the {name} method{where}; "
                         f"its options: {', '.join(fields) or 'none'}")
    try:
        validated = _options_model(cls).model_validate(options).model_dump(mode="json")
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ValueError(f"{name} options: {problems}") from None
    try:  # the constructor's own checks (a method's layers at their default sizes are small)
        cls(**validated)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: {exc}") from None
    return validated


def validate_request_options(method: ConditioningMethod, options: dict) -> Any:
    """Per-request options (``GenerationRequest.options``) for a (possibly combined) method: each key must
    belong to one of its methods' ``Options``. Returns ``{method name: Options instance}``."""
    members = method.methods
    taken = {f.name: m for m in members for f in dataclasses.fields(m.Options)}
    unknown = sorted(set(options) - set(taken))
    if unknown:
        owners = sorted({other for other, cls in METHODS.items() for key in unknown
                         if key in {f.name for f in dataclasses.fields(cls.Options)}})
        names = "+".join(m.name for m in members)
        hint = "; ".join(f"{o}: {METHODS[o].summary}" if METHODS[o].summary else o for o in owners)
        raise ValueError(f"{', '.join(unknown)} does not apply to this model's method ({names})"
                         + (f"; it is an option of {hint}" if hint else ""))
    out = {}
    for m in members:
        own = {k: v for k, v in options.items() if taken.get(k) is m}
        try:
            out[m.name] = m.Options(**own)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{m.name} options: {exc}") from None
    return out


def build_method(name: str, backbone, **options) -> ConditioningMethod:
    """A conditioning method by name, sized for ``backbone`` (latent channels, token width, patch)."""
    return method_class(name).for_backbone(backbone, **options)
