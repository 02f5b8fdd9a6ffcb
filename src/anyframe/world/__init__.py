"""The shapes world: procedural videos with exact ground truth, and an oracle that reads clips.

    scene = scene_for_seed(0)                 # a scene program (JSON round trip)
    clip = render(scene)                      # frames [T, H, W, 3] uint8, masks [N, T, H, W]
    caption(scene), regional_captions(scene), frame_captions(scene)
    parse(caption(scene)) == semantics(scene)
"""

from anyframe.world.captions import caption, caption_vocabulary, frame_captions, regional_captions
from anyframe.world.edits import EDIT_KINDS, EditPair, instruction_vocabulary, make_edit
from anyframe.world.grammar import SceneSemantics, parse, semantics
from anyframe.world.render import Rendering, render
from anyframe.world.sampling import SPLITS, sample_scene, scene_for_seed
from anyframe.world.scene import Event, Motion, Scene, Trajectory, WorldObject, simulate
from anyframe.world.unpaired import UnpairedCase, make_unpaired


def world_vocabulary() -> list[str]:
    """Every word token the world's captions, paraphrases and edit instructions can contain (the
    word-level tokenizer of world-scale models is built from it, so no world text is ``<unk>``)."""
    return sorted(set(caption_vocabulary()) | set(instruction_vocabulary()))


__all__ = [
    "Scene", "WorldObject", "Motion", "Event", "Trajectory", "simulate", "render", "Rendering", "caption",
    "regional_captions", "frame_captions", "caption_vocabulary", "parse", "semantics", "SceneSemantics",
    "SPLITS", "sample_scene", "scene_for_seed", "EditPair", "EDIT_KINDS", "make_edit", "instruction_vocabulary",
    "UnpairedCase", "make_unpaired", "world_vocabulary",
]
