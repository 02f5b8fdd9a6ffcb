"""Backbones, autoencoders and text encoders."""

from anyframe.models.autoencoder import build_world_autoencoder, decode_video, encode_video
from anyframe.models.dit import MICRO_CONDITIONS, STIV_SIZES, STIVTransformer, build_stiv
from anyframe.models.text_encoder import TextCondition, build_t5_encoder, build_word_tokenizer, encode_prompts

__all__ = [
    "STIVTransformer", "build_stiv", "STIV_SIZES", "MICRO_CONDITIONS", "build_world_autoencoder",
    "encode_video", "decode_video", "build_word_tokenizer", "build_t5_encoder", "encode_prompts", "TextCondition",
]
