"""anyframe: video generation from text and from images placed at any frame.

The names below are imported on first use (PEP 562), so that ``import anyframe`` — and the command line's
``--help`` — does not load torch, diffusers and the models until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from anyframe.errors import AnyframeInputError

_LAZY = {
    "ConditioningMethod": "anyframe.conditioning", "FrameReplacement": "anyframe.conditioning",
    "STIVTransformer": "anyframe.models.dit", "build_stiv": "anyframe.models.dit",
    "AnyFrameOutput": "anyframe.pipelines", "AnyFramePipeline": "anyframe.pipelines",
    "GenerationRequest": "anyframe.pipelines", "Keyframe": "anyframe.pipelines",
    "build_world_pipeline": "anyframe.pipelines",
}

# (spelled out, not ``*_LAZY``: type checkers read ``__all__`` without running the module)
__all__ = [
    "__version__", "AnyframeInputError",
    "ConditioningMethod", "FrameReplacement", "STIVTransformer", "build_stiv",
    "AnyFrameOutput", "AnyFramePipeline", "GenerationRequest", "Keyframe", "build_world_pipeline",
]

if TYPE_CHECKING:  # (for type checkers and editors; at run time, __getattr__ below)
    from anyframe.conditioning import ConditioningMethod, FrameReplacement
    from anyframe.models.dit import STIVTransformer, build_stiv
    from anyframe.pipelines import (
        AnyFrameOutput,
        AnyFramePipeline,
        GenerationRequest,
        Keyframe,
        build_world_pipeline,
    )


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("anyframe")
        except PackageNotFoundError:  # running from a source tree without installation
            value = "0.0.0"
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'anyframe' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
