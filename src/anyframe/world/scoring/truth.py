"""The truth a clip is scored against: the scene's simulation and render, and each object's clean and isolated
frames (package docstring, *Conventions*)."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from anyframe.world import vocab
from anyframe.world.oracle import AREA_PER_R2, classify_style
from anyframe.world.render import Rendering, pixelate_factor, render
from anyframe.world.scene import Scene, Trajectory
from anyframe.world.scoring.reading import MIN_MATCH_TRACK

CLEAN_AREA = 0.9  # visible share of the analytic area for a clean frame
MIN_READABLE_PX = 4.0  # analytic area (px at the analysed resolution) below which an object cannot be read


@dataclass
class Truth:
    """What the clip should show: the scene, its simulation and render, and where objects are clean."""

    scene: Scene
    traj: Trajectory
    rendering: Rendering
    clean: np.ndarray  # bool [N, T]
    isolated: np.ndarray  # bool [N, T]: clean and no other object at all within a pixel (exact centroid)
    k: float

    @property
    def n(self) -> int:
        return len(self.scene.objects)

    def position(self, i: int) -> np.ndarray:
        """float [T, 2] screen centre of object i."""
        return np.stack([self.traj.x[i], self.traj.y[i]], axis=-1)

    def color_index(self, i: int) -> list[str]:
        return self.traj.color[i]

    @property
    def readable(self) -> np.ndarray:
        """bool [N]: objects the truth shows clean in at least MIN_MATCH_TRACK frames — one clean glimpse
        cannot make a track, so such an object is neither matched nor scored."""
        return self.clean.sum(axis=1) >= MIN_MATCH_TRACK

    @functools.cached_property
    def style_legible(self) -> bool:
        """Whether the true render shows its style: a single small outlined cross (too thin to have an
        inside) looks flat, a tiny striped object may carry one stripe. Where the truth cannot show the
        style, no clip is scored on it."""
        return classify_style(self.rendering.frames) == self.scene.style


def truth_of(scene: Scene) -> Truth:
    """Simulate and render ``scene`` and find every object's clean frames (package docstring)."""
    rendering = render(scene)
    traj = rendering.trajectory
    n, t_len = traj.x.shape
    k = scene.size / vocab.REFERENCE_CANVAS
    masks = rendering.masks
    clean = np.zeros((n, t_len), bool)
    isolated = np.zeros((n, t_len), bool)
    if n:
        # the pixelated style is read at block resolution: "touching" is within a block there, and an
        # object needs MIN_READABLE_PX blocks to be read at all
        f = pixelate_factor(scene.size) if scene.style == "pixelated" else 1
        expected = np.array([AREA_PER_R2[o.shape] for o in scene.objects])[:, None] * traj.radius**2
        shown = masks.sum(axis=(2, 3))
        clean = traj.visible & (shown >= CLEAN_AREA * expected) & (expected >= MIN_READABLE_PX * f * f)
        isolated = clean.copy()
        kernel = np.ones((2 * f + 1, 2 * f + 1), np.uint8)
        present = masks > 0.05
        for i in range(n):
            for t in np.nonzero(clean[i])[0]:
                near = cv2.dilate(present[i, t].astype(np.uint8), kernel).astype(bool)
                touching = [j for j in range(n) if j != i and present[j, t][near].any()]
                isolated[i, t] = not touching
                if any(traj.color[j][t] == traj.color[i][t] for j in touching):
                    clean[i, t] = False
    return Truth(scene, traj, rendering, clean, isolated, k)
