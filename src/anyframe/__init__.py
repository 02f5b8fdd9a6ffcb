"""anyframe: video generation from text and from images placed at any frame.

"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("anyframe")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

from anyframe.conditioning import ConditioningMethod, FrameReplacement
from anyframe.errors import AnyframeInputError
from anyframe.models.dit import STIVTransformer, build_stiv
from anyframe.pipelines import AnyFrameOutput, AnyFramePipeline, GenerationRequest, Keyframe, build_world_pipeline

__all__ = [
    "__version__", "AnyFramePipeline", "AnyFrameOutput", "GenerationRequest", "Keyframe", "STIVTransformer", "build_stiv",
    "FrameReplacement", "ConditioningMethod", "AnyframeInputError", "build_world_pipeline",
]
