"""STIV's progressive recipe (§2.4): start a model from a smaller or simpler one.

- **Image → video.** A T2I model is this backbone trained on 1-frame clips; its temporal layers were
  never used. The video model takes every other weight, and its temporal branch starts *fresh*:
  new temporal attention and a zero temporal modulation (gate 0), so at step 0 the video model is
  the image model applied frame by frame. A temporal patch size > 1 inflates the 3D patch
  embedding over time (STIV App. E: "inflating the 3D convolution weight in the temporal dimension").
- **Lower resolution / fewer frames → more.** Every weight has the same shape; the new model's RoPE
  positions are interpolated into the old token grid (``rope_base_grid``).
"""

from __future__ import annotations

import torch

from anyframe.models.dit import STIVBlock, STIVTransformer

TEMPORAL_MODULATION_ROWS = (3, 4, 5)  # (shift, scale, gate) of the temporal attention in STIVBlock


@torch.no_grad()
def init_from_image_model(video: STIVTransformer, image: STIVTransformer) -> list[str]:
    """Copy an image model's weights into a video model; the temporal branch starts fresh.

    Returns the names of the parameters that were *not* copied (the fresh temporal attention).
    """
    for key in ("in_channels", "hidden_size", "num_heads", "num_layers", "text_dim", "extra_in_channels"):
        if getattr(video.config, key) != getattr(image.config, key):
            raise ValueError(f"image and video models differ in {key}: {getattr(image.config, key)} vs {getattr(video.config, key)}")
    image_state = image.state_dict()
    video_state = video.state_dict()
    fresh = []
    d = video.config.hidden_size
    for name, target in video_state.items():
        if ".temporal_attn." in name or (name.startswith("text_refiner.") and name not in image_state):
            fresh.append(name)  # keep the video model's own initialisation (a new text refiner: the identity)
            continue
        source = image_state[name]
        if name == "patch_embed.weight" and source.shape != target.shape:
            # (D, C, 1, ph, pw) → (D, C, pt, ph, pw): a clip constant in time embeds like the image
            pt = target.shape[2]
            target.copy_(source.expand_as(target) / pt)
        elif name.startswith("proj_out.") and source.shape != target.shape:
            # features are (pt, ph, pw, C): each temporal sub-position predicts what the image did
            pt = video.patch_size[0]
            target.copy_(source.reshape(1, *source.shape).expand(pt, *source.shape).reshape(target.shape))
        else:
            target.copy_(source)
    # Zero the temporal (shift, scale, gate): in the shared AdaLN's output rows and every block's offset.
    rows = video_state["adaln.1.weight"].view(STIVBlock.NUM_MODULATIONS, d, -1)
    rows[list(TEMPORAL_MODULATION_ROWS)] = 0
    video_state["adaln.1.bias"].view(STIVBlock.NUM_MODULATIONS, d)[list(TEMPORAL_MODULATION_ROWS)] = 0
    for i in range(video.config.num_layers):
        video_state[f"blocks.{i}.modulation_offset"][list(TEMPORAL_MODULATION_ROWS)] = 0
    video.load_state_dict(video_state)
    return fresh


def smaller_model_overrides(small: STIVTransformer) -> dict:
    """Backbone config overrides for a larger model initialised from ``small``: RoPE positions are
    interpolated into ``small``'s token grid."""
    grid = small.config.rope_base_grid
    if grid is None:
        t, h, w = small.config.sample_size
        pt, ph, pw = small.config.patch_size
        grid = (t // pt, h // ph, w // pw)
    return {"rope_base_grid": tuple(int(g) for g in grid)}


@torch.no_grad()
def init_from_smaller_model(model: STIVTransformer, small: STIVTransformer) -> None:
    """Load a lower-resolution / shorter model's weights (the shapes must match)."""
    if model.config.rope_base_grid is None:
        raise ValueError("build the larger model with smaller_model_overrides(small) so its RoPE is interpolated")
    missing, unexpected = model.load_state_dict(small.state_dict(), strict=False)
    if missing or unexpected:
        raise ValueError(f"models differ: missing {missing[:3]}, unexpected {unexpected[:3]}")
