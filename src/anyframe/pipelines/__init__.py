"""Pipelines: the request (``request``), the sampler loop (``anyframe``), loading folders (``loading``,
``wan_folder``) and randomly initialised presets (``presets``)."""

from anyframe.pipelines.anyframe import AnyFrameOutput, AnyFramePipeline, PipelineEncoders
from anyframe.pipelines.loading import DTYPES, load_pipeline, native_bf16, resolve_dtype
from anyframe.pipelines.presets import WORLD_PRESETS, build_wan_pipeline, build_world_pipeline
from anyframe.pipelines.request import (
    GenerationRequest,
    Keyframe,
    ModelLimits,
    resolve_frame_index,
    validate_request,
)

__all__ = [
    "AnyFramePipeline", "AnyFrameOutput", "PipelineEncoders", "GenerationRequest", "Keyframe", "ModelLimits",
    "validate_request", "resolve_frame_index", "load_pipeline", "resolve_dtype", "native_bf16", "DTYPES",
    "build_world_pipeline", "build_wan_pipeline", "WORLD_PRESETS",
]
