"""Loading a pipeline folder (anyframe's, or a diffusers Wan2.1 one) at a dtype, and choosing that dtype."""

from __future__ import annotations

import os

import torch

from anyframe.errors import AnyframeInputError
from anyframe.pipelines.anyframe import AnyFramePipeline
from anyframe.pipelines.wan_folder import is_wan_folder

DTYPES = ("auto", "float32", "bfloat16")


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` computes bf16 matrix products in hardware: a CUDA GPU with bf16, or a CPU with
    AVX512-BF16 or AMX (torch.cpu's own ISA checks, which the CPU build uses to pick its kernels); elsewhere
    bf16 products are emulated and slower than float32."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def resolve_dtype(dtype: str, device: str | torch.device = "cpu") -> str:
    """``auto`` → ``bfloat16`` where ``device`` has native bf16 (:func:`native_bf16`), else ``float32``;
    ``float32`` and ``bfloat16`` stay. On the shipped model bf16 moves none of the standard suite's targets
    (``benchmarks/results/bf16_inference.md``) and is 1.4–1.7× faster on such a CPU (``generate_speed.md``)."""
    if dtype not in DTYPES:
        raise AnyframeInputError(f"dtype must be {', '.join(DTYPES)}, got {dtype!r}")
    if dtype == "auto":
        return "bfloat16" if native_bf16(device) else "float32"
    return dtype


def load_pipeline(model_dir: str | os.PathLike, dtype: str = "auto", transformer_file: str | os.PathLike | None = None,
                  device: str | torch.device = "cpu") -> AnyFramePipeline:
    """A pipeline folder (anyframe's, or a diffusers Wan2.1 one) with its weights at ``dtype``: ``float32``,
    ``bfloat16``, or ``auto`` (:func:`resolve_dtype` for the ``device`` it will run on: bf16 where that is
    native). The VAE stays float32 (decoding in bf16 costs quality for little memory; the Wan loader does so
    itself). Callers that report the dtype resolve it first (:func:`resolve_dtype`) and pass the result."""
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[resolve_dtype(dtype, device)]
    kwargs = {}
    if transformer_file is not None:
        if not is_wan_folder(model_dir):
            raise AnyframeInputError("--transformer-file applies to a diffusers Wan2.1 folder given as --model")
        kwargs["transformer_file"] = transformer_file
    if is_wan_folder(model_dir):
        kwargs["torch_dtype"] = torch_dtype
    else:  # diffusers deprecates torch_dtype for dtype
        kwargs["dtype"] = {"default": torch_dtype, "vae": torch.float32}
    return AnyFramePipeline.from_pretrained(model_dir, **kwargs)
