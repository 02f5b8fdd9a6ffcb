"""The shapes world: procedural videos with exact ground truth, and an oracle that reads clips."""

from anyframe.world.scene import Event, Motion, Scene, Trajectory, WorldObject, simulate

__all__ = ["Scene", "WorldObject", "Motion", "Event", "Trajectory", "simulate"]
