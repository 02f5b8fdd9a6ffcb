"""Loading Wan2.1 weights a user already has, into an :class:`~anyframe.pipelines.anyframe.AnyFramePipeline`.

Two layouts:

- a **diffusers folder** (``Wan-AI/Wan2.1-T2V-1.3B-Diffusers``, ``…-I2V-14B-480P-Diffusers``,
  ``…-FLF2V-14B-720P-diffusers``): ``model_index.json`` of a ``WanPipeline`` or ``WanImageToVideoPipeline``,
  one subfolder per component;
- the **original Wan2.1 transformer checkpoint** (one ``.safetensors`` file in Wan's own key layout, as
  ``Wan-AI/Wan2.1-T2V-1.3B`` ships it), through diffusers' ``from_single_file`` with the config of a
  diffusers folder: ``load_wan_pipeline(folder, transformer_file=...)``. The original repository's VAE,
  T5 and CLIP are pickles (``.pth``); anyframe takes those from the diffusers folder.

Nothing is downloaded (``local_files_only``). The conditioning method is chosen from the backbone: a T2V
model (``in_channels == C``) gets frame replacement (keyframes at any frame on the T2V weights, STIV-style),
an I2V / FLF2V model (``in_channels == 2C + 4``) Wan's own :class:`~anyframe.conditioning.wan_i2v.WanI2V`.
"""

from __future__ import annotations

from pathlib import Path

import diffusers
import torch
from diffusers import AutoencoderKLWan
from transformers import AutoImageProcessor, AutoTokenizer, CLIPVisionModel, UMT5EncoderModel

from anyframe.conditioning.frame_replacement import FrameReplacement
from anyframe.conditioning.wan_i2v import WanI2V
from anyframe.errors import AnyframeInputError
from anyframe.io import read_json_object
from anyframe.models.wan import WanBackbone

WAN_PIPELINES = ("WanPipeline", "WanImageToVideoPipeline")


def _model_index(path: Path) -> dict:
    return read_json_object(path / "model_index.json")


def is_wan_folder(path: str | Path) -> bool:
    """Whether ``path`` is a diffusers folder of a Wan pipeline (not an anyframe pipeline folder)."""
    index = Path(path) / "model_index.json"
    return index.is_file() and _model_index(Path(path)).get("_class_name") in WAN_PIPELINES


def default_method(transformer: WanBackbone):
    """Frame replacement for a T2V backbone; Wan's I2V conditioning for an I2V / FLF2V one."""
    if transformer.config.in_channels == transformer.latent_channels:
        return FrameReplacement()
    return WanI2V.for_backbone(transformer)


def load_wan_transformer(folder: Path, transformer_file: str | Path | None = None,
                         torch_dtype: torch.dtype | None = None) -> WanBackbone:
    """The backbone of a diffusers Wan folder, or from an original-layout single file with that folder's
    transformer config."""
    if transformer_file is None:
        return WanBackbone.from_pretrained(folder, subfolder="transformer", torch_dtype=torch_dtype,
                                           local_files_only=True, use_safetensors=True)
    transformer_file = Path(transformer_file)
    if not transformer_file.is_file():
        raise AnyframeInputError(f"transformer file not found: {transformer_file}")
    if transformer_file.suffix != ".safetensors":
        raise AnyframeInputError(f"the transformer file must be .safetensors (a pickle is not loaded): {transformer_file}")
    return WanBackbone.from_single_file(str(transformer_file), config=str(folder), subfolder="transformer",
                                        torch_dtype=torch_dtype, local_files_only=True)


def load_wan_pipeline(path: str | Path, pipeline_class, torch_dtype: torch.dtype | None = None,
                      conditioning=None, transformer_file: str | Path | None = None, **unused):
    """An anyframe pipeline from a diffusers Wan folder (see the module doc).

    Args:
        pipeline_class: the pipeline to build (``AnyFramePipeline``; passed in, so that this module does not
            import the pipeline module, which imports it).
        torch_dtype: of the transformer, text encoder and image encoder (e.g. ``torch.bfloat16``); the VAE
            stays float32, as Wan recommends.
        conditioning: a method to use instead of the default for the backbone (e.g. ``FlashI2V``).
        transformer_file: an original-layout Wan transformer checkpoint to load instead of the folder's.
    """
    path = Path(path)
    index = _model_index(path)
    try:
        transformer = load_wan_transformer(path, transformer_file, torch_dtype)
        vae = AutoencoderKLWan.from_pretrained(path, subfolder="vae", torch_dtype=torch.float32,
                                               local_files_only=True).eval()
        text_encoder = UMT5EncoderModel.from_pretrained(path / "text_encoder", torch_dtype=torch_dtype,
                                                        local_files_only=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(path / "tokenizer", local_files_only=True)
        scheduler_class = getattr(diffusers, index["scheduler"][1])
        scheduler = scheduler_class.from_pretrained(path, subfolder="scheduler", local_files_only=True)
        image_encoder = image_processor = None
        if (index.get("image_encoder") or [None, None])[1] and (path / "image_encoder").is_dir():
            image_encoder = CLIPVisionModel.from_pretrained(path / "image_encoder", torch_dtype=torch_dtype,
                                                            local_files_only=True).eval()
            image_processor = AutoImageProcessor.from_pretrained(path / "image_processor", local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AnyframeInputError(f"cannot load the Wan folder {path}: {' '.join(str(exc).split())[:400]}") from None
    return pipeline_class(
        transformer=transformer.eval(),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        conditioning=(conditioning or default_method(transformer)).eval(),
        image_encoder=image_encoder,
        image_processor=image_processor,
    )
