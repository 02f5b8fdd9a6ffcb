"""The shapes world's vocabulary: every name a scene program, a caption or the oracle may use.

All sizes and speeds are given for the reference canvas of 32 px and scale with the canvas.
"""

from __future__ import annotations

REFERENCE_CANVAS = 32

SHAPES = ("circle", "square", "triangle", "diamond", "cross")

# Well-separated hues (the oracle names colours by nearest neighbour in this table).
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (225, 45, 45),
    "orange": (245, 145, 30),
    "yellow": (240, 225, 45),
    "green": (45, 185, 70),
    "cyan": (40, 210, 220),
    "blue": (50, 90, 235),
    "purple": (150, 65, 210),
    "white": (240, 240, 240),
}

# Object radius (px at 32 px) by size word.
SIZES: dict[str, float] = {"small": 3.0, "medium": 4.5, "large": 6.0}

# Screen directions: (dx, dy), y grows downwards.
DIRECTIONS: dict[str, tuple[int, int]] = {
    "left": (-1, 0),
    "right": (1, 0),
    "up": (0, -1),
    "down": (0, 1),
    "up-left": (-1, -1),
    "up-right": (1, -1),
    "down-left": (-1, 1),
    "down-right": (1, 1),
}

SPEEDS: dict[str, float] = {"slowly": 0.6, "normal": 1.0, "quickly": 1.5}  # px per frame at 32 px
SCALE_CHANGES = ("none", "grow", "shrink")  # grow: ×1.6 over the clip; shrink: ×0.55
GROW_FACTOR, SHRINK_FACTOR = 1.6, 0.55
ROTATION_TURNS = 0.5  # a rotating object turns half a turn over the clip

# Backgrounds: solid colours and patterns. The last two of each are held out (the `ood_background` split).
SOLID_BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (15, 15, 20),
    "gray": (90, 90, 95),
    "navy": (20, 25, 70),
    "olive": (70, 75, 25),
    "maroon": (80, 20, 25),
}
PATTERN_BACKGROUNDS = ("checker", "stripes", "grid", "dots")
BACKGROUNDS = tuple(SOLID_BACKGROUNDS) + PATTERN_BACKGROUNDS
HELD_OUT_BACKGROUNDS = ("maroon", "dots")

STYLES = ("flat", "outline", "striped", "grain", "pixelated")
HELD_OUT_STYLES = ("pixelated",)

PANS = ("none", "left", "right", "up", "down")
PAN_SPEED = 0.75  # px per frame at 32 px

EVENT_TYPES = ("collision", "appear", "disappear")
COLLISION_EFFECTS = ("change_color", "stop")

MAX_OBJECTS = 4  # in the training distribution; the `more_objects` split goes beyond
