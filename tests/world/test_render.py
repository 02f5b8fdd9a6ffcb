"""Tests for the shapes-world renderer: shapes, anti-aliasing, occlusion, visibility, pans, rotation,
styles, determinism and canvas sizes — each against an independent expectation (analytic areas,
vocabulary colours, shifted frames), not against the renderer's own constants."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from anyframe.world import vocab
from anyframe.world.render import Rendering, render
from anyframe.world.scene import Event, Motion, Scene, WorldObject, simulate

# Analytic areas of each shape in units of r², from the renderer's specification: circle of radius r,
# square of half side 0.85r, equilateral triangle of side 2r, diamond (rhombus) of half-diagonals 1.2r × 0.7r, cross of two
# bars of half-length r and half-thickness 0.35r.
AREA_PER_R2 = {
    "circle": math.pi,
    "square": 1.7**2,
    "triangle": math.sqrt(3),
    "diamond": 2 * 1.2 * 0.7,
    "cross": 2 * (2 * 0.7) - 0.7**2,
}


def obj(i: int = 0, shape: str = "circle", color: str = "red", size: str = "large", x: float = 16.0,
        y: float = 16.0, motion: Motion | None = None, angle: float = 0.0) -> WorldObject:
    return WorldObject(i, shape, color, size, x, y, motion or Motion(), angle)


def scene(*objects: WorldObject, **kwargs) -> Scene:
    kwargs.setdefault("frames", 4)
    kwargs.setdefault("background", "black")
    return Scene(objects=tuple(objects), **kwargs).validate()


def rgb(name: str) -> np.ndarray:
    table = vocab.COLORS if name in vocab.COLORS else vocab.SOLID_BACKGROUNDS
    return np.asarray(table[name], dtype=np.int64)


# ------------------------------------------------------------------------------------------ shapes


def test_output_shapes_and_types() -> None:
    r = render(scene(obj(0), obj(1, x=8, y=8), frames=5))
    assert isinstance(r, Rendering)
    assert r.frames.shape == (5, 32, 32, 3) and r.frames.dtype == np.uint8
    assert r.masks.shape == (2, 5, 32, 32) and r.masks.dtype == np.float32
    assert r.trajectory.x.shape == (2, 5)


@pytest.mark.parametrize("shape", vocab.SHAPES)
def test_shape_has_its_colour_at_the_centre_and_background_elsewhere(shape: str) -> None:
    r = render(scene(obj(shape=shape, color="green", x=16.5, y=16.5), background="navy"))
    frame = r.frames[0].astype(np.int64)
    assert (frame[16, 16] == rgb("green")).all()
    assert r.masks[0, 0, 16, 16] == 1.0
    for corner in (frame[0, 0], frame[0, -1], frame[-1, 0], frame[-1, -1], frame[16, 1], frame[1, 16]):
        assert (corner == rgb("navy")).all()
    # every pixel the mask misses is pure background
    assert (frame[r.masks[0, 0] == 0] == rgb("navy")).all()


@pytest.mark.parametrize("shape", vocab.SHAPES)
@pytest.mark.parametrize("angle", [0.0, 0.3])
def test_mask_area_matches_the_analytic_area(shape: str, angle: float) -> None:
    # "small" on a 64-px canvas: r = 3 × 64/32 = 6 px; an off-grid centre so no lucky alignment helps
    r = render(scene(obj(shape=shape, size="small", x=32.3, y=31.7, angle=angle), size=64, frames=1))
    assert r.trajectory.radius[0, 0] == pytest.approx(6.0)
    expected = AREA_PER_R2[shape] * 36.0
    assert r.masks[0, 0].sum() == pytest.approx(expected, rel=0.03)


def test_shape_areas_at_equal_radius_are_within_2x() -> None:
    areas = [render(scene(obj(shape=s, x=16.5, y=16.5), frames=1)).masks[0, 0].sum() for s in vocab.SHAPES]
    assert max(areas) / min(areas) < 2.0


def test_small_shapes_differ_from_each_other() -> None:
    # at 32 px with the small size (r = 3), every pair of shapes differs by several pixels of coverage
    masks = {s: render(scene(obj(shape=s, size="small", x=16.2, y=15.8), frames=1)).masks[0, 0]
             for s in vocab.SHAPES}
    for a in vocab.SHAPES:
        for b in vocab.SHAPES:
            if a < b:
                assert np.abs(masks[a] - masks[b]).sum() > 5.0, (a, b)


def test_triangle_points_up_at_angle_zero() -> None:
    m = render(scene(obj(shape="triangle", x=32, y=32), size=64, frames=1)).masks[0, 0]
    rows = np.nonzero(m.sum(axis=1) > 0.5)[0]
    top, bottom = rows.min(), rows.max()
    assert 32 - top > bottom - 32  # the tip reaches further from the centroid than the base
    assert m[top].sum() < m[bottom].sum()  # narrow at the top, wide at the bottom


# ---------------------------------------------------------------------------------- anti-aliasing


def test_edges_are_anti_aliased_and_masks_are_in_unit_range() -> None:
    r = render(scene(obj(shape="circle", x=15.3, y=16.7), background="black"))
    m = r.masks[0, 0]
    assert m.min() >= 0.0 and m.max() <= 1.0
    edge = (m > 0.05) & (m < 0.95)
    assert edge.sum() >= 12
    # an edge pixel's red channel lies strictly between the background's and the object's
    reds = r.frames[0][edge][:, 0].astype(int)
    assert ((reds > rgb("black")[0]) & (reds < rgb("red")[0])).all()


def test_frame_is_the_mask_weighted_sum_of_colours_and_background() -> None:
    objects = (obj(0, "circle", "blue", x=12.3, y=14.1),
               obj(1, "triangle", "yellow", x=17.6, y=15.2, angle=0.4),
               obj(2, "cross", "white", "medium", x=20.2, y=20.9))
    r = render(scene(*objects, background="olive"))
    colours = np.stack([rgb(o.color) for o in objects]).astype(np.float64)  # [N, 3]
    m = r.masks[:, 0].astype(np.float64)  # [N, H, W]
    expected = np.einsum("nhw,nc->hwc", m, colours) + (1 - m.sum(0))[..., None] * rgb("olive")
    assert np.abs(r.frames[0] - expected).max() <= 1.0


# ---------------------------------------------------------------------------------------- occlusion


def test_a_later_object_occludes_an_earlier_one() -> None:
    def pair(first_is_circle: bool) -> Rendering:
        circle, square = obj(0, "circle", "blue", x=14, y=16), obj(0, "square", "red", x=19, y=16)
        first, second = (circle, square) if first_is_circle else (square, circle)
        return render(scene(first, replace(second, id=1)))

    r = pair(first_is_circle=True)  # the red square is in front
    covered = r.masks[1, 0] == 1.0
    assert covered.sum() > 50
    assert (r.masks[0, 0][covered] == 0).all()
    assert (r.frames[0][covered] == rgb("red")).all()
    assert (r.masks[0, 0] == 1.0).sum() > 10  # the rest of the circle stays visible
    assert r.masks.sum(axis=0).max() <= 1.0 + 1e-6
    # where both shapes are, the one drawn later is seen: swapping the order swaps the colour
    alone = {o.shape: render(scene(o)).masks[0, 0]
             for o in (obj(0, "circle", "blue", x=14, y=16), obj(0, "square", "red", x=19, y=16))}
    overlap = (alone["circle"] == 1.0) & (alone["square"] == 1.0)
    assert overlap.sum() > 20
    assert (r.frames[0][overlap] == rgb("red")).all()
    swapped = pair(first_is_circle=False)
    assert (swapped.frames[0][overlap] == rgb("blue")).all()
    assert (swapped.masks[0, 0][overlap] == 0).all()


def test_masks_sum_to_at_most_one_with_many_overlapping_objects() -> None:
    objects = [obj(i, s, c, "large", 14 + 1.3 * i, 15 + 0.7 * i, Motion("right", bounce=True, rotate=True))
               for i, (s, c) in enumerate(zip(vocab.SHAPES, vocab.COLORS))]
    for style in vocab.STYLES:
        r = render(scene(*objects, style=style, background="checker", pan="up", frames=6))
        total = r.masks.sum(axis=0)
        assert total.max() <= 1.0 + 1e-5 and r.masks.min() >= 0.0, style


# ------------------------------------------------------------------------------------- visibility


@pytest.mark.parametrize("event", [Event("appear", 0, frame=2), Event("disappear", 0, frame=2)])
def test_invisible_frames_have_no_mask_and_no_object_colour(event: Event) -> None:
    s = scene(obj(0, color="yellow"), events=(event,), background="gray")
    r = render(s)
    hidden = [0, 1] if event.type == "appear" else [2, 3]
    shown = [2, 3] if event.type == "appear" else [0, 1]
    for t in hidden:
        assert not r.trajectory.visible[0, t]
        assert r.masks[0, t].max() == 0.0
        assert (r.frames[t].astype(int) == rgb("gray")).all()
    for t in shown:
        assert r.masks[0, t].sum() > 50
        assert (r.frames[t][16, 16] == rgb("yellow")).all()


def test_collision_recolours_the_object_from_the_collision_frame() -> None:
    a = obj(0, "circle", "red", "small", 6, 16, Motion("right", "quickly"))
    b = obj(1, "square", "blue", "small", 26, 16, Motion("left", "quickly"))
    s = scene(a, b, events=(Event("collision", 0, other=1, effect="change_color", color="green"),), frames=10)
    r = render(s)
    hit = r.trajectory.event_frames[0]
    assert hit is not None and 0 < hit < 9
    # the pixel under the circle's centre, on frames where the square (drawn in front) does not cover it
    for t in (0, hit - 1, hit, 9):
        cx, cy = int(r.trajectory.x[0, t]), int(r.trajectory.y[0, t])
        assert r.masks[0, t, cy, cx] == 1.0
        assert (r.frames[t, cy, cx] == rgb("red" if t < hit else "green")).all(), t


# ------------------------------------------------------------------------------------ camera pans


def shifted_equal(a: np.ndarray, b: np.ndarray, dx: int, dy: int) -> bool:
    """Whether a[y, x] == b[y + dy, x + dx] wherever both exist (frames [H, W, 3])."""
    h, w = a.shape[:2]
    ya, yb = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xa, xb = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    return bool(np.abs(a[ya, xa].astype(int) - b[yb, xb].astype(int)).max() <= 1)


@pytest.mark.parametrize("background", vocab.PATTERN_BACKGROUNDS)
@pytest.mark.parametrize("pan", ["left", "right", "up", "down"])
@pytest.mark.parametrize("size", [32, 64])
def test_pan_moves_a_pattern_background_by_the_camera_offset(background: str, pan: str, size: int) -> None:
    r = render(scene(background=background, pan=pan, size=size, frames=5))
    t = 4 if size == 32 else 2  # a camera offset of exactly 3 px (0.75 px/frame at 32 px, 1.5 at 64)
    dx, dy = r.trajectory.camera[t]
    assert abs(dx) + abs(dy) == pytest.approx(3.0)
    dx, dy = round(dx), round(dy)
    # world = screen + camera: what frame 0 showed at screen (x + dx, y + dy), frame t shows at (x, y)
    assert shifted_equal(r.frames[t], r.frames[0], dx, dy)
    assert not np.array_equal(r.frames[t], r.frames[0])  # the pan is visible
    assert not shifted_equal(r.frames[t], r.frames[0], -dx, -dy)  # and goes the right way


@pytest.mark.parametrize("background", vocab.SOLID_BACKGROUNDS)
def test_solid_background_is_unchanged_by_a_pan(background: str) -> None:
    r = render(scene(background=background, pan="right", frames=5))
    assert (r.frames.astype(int) == rgb(background)).all()


@pytest.mark.parametrize("background", vocab.PATTERN_BACKGROUNDS)
def test_pattern_backgrounds_are_dark_and_two_toned(background: str) -> None:
    frame = render(scene(background=background, frames=1)).frames[0]
    assert frame.max() < 110  # never mistaken for an object's bright colour
    assert len(np.unique(frame.reshape(-1, 3), axis=0)) >= 2
    assert frame.reshape(-1, 3).astype(int).sum(1).std() > 10  # visibly patterned


# ---------------------------------------------------------------------------------------- rotation


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.minimum(a, b).sum() / np.maximum(a, b).sum())


def test_a_rotating_square_turns() -> None:
    # 5 frames, half a turn: angles 0, π/4, π/2, 3π/4, π
    r = render(scene(obj(shape="square", x=32, y=32, motion=Motion(rotate=True)), size=64, frames=5))
    m = r.masks[0]
    assert r.trajectory.angle[0, 1] == pytest.approx(math.pi / 4)
    assert iou(m[0], m[1]) < 0.85  # at 45° it is a different figure
    assert iou(m[0], m[2]) > 0.98  # at 90° the square is itself again
    assert iou(m[1], m[3]) > 0.98
    assert m[1].sum() == pytest.approx(m[0].sum(), rel=0.02)  # turning keeps the area


def test_a_triangle_turned_half_way_is_upside_down() -> None:
    r = render(scene(obj(shape="triangle", x=32, y=32, motion=Motion(rotate=True)), size=64, frames=5))
    m = r.masks[0]
    assert np.abs(m[4] - m[0][::-1]).max() < 1e-3
    assert iou(m[4], m[0]) < 0.7


def test_a_rotating_circle_does_not_change() -> None:
    r = render(scene(obj(shape="circle", x=32.4, y=31.3, motion=Motion(rotate=True)), size=64, frames=5))
    for t in range(1, 5):
        assert np.abs(r.masks[0, t] - r.masks[0, 0]).max() < 1e-6
        assert np.array_equal(r.frames[t], r.frames[0])


# ------------------------------------------------------------------------------------------- styles


def styled(style: str, background: str = "gray", **kwargs) -> Rendering:
    kwargs.setdefault("size", 64)
    return render(scene(obj(0, "circle", "red", x=20, y=24), obj(1, "square", "cyan", x=42, y=38),
                        style=style, background=background, **kwargs))


def test_flat_fills_the_shape_with_its_colour() -> None:
    r = styled("flat")
    assert (r.frames[0][r.masks[0, 0] == 1.0] == rgb("red")).all()


def test_outline_draws_a_ring_and_keeps_the_filled_mask() -> None:
    flat, out = styled("flat"), styled("outline")
    assert np.array_equal(flat.masks, out.masks)  # the mask says where the object is
    frame = out.frames[0].astype(int)
    yy, xx = np.mgrid[:64, :64] + 0.5
    dist = np.hypot(xx - 20, yy - 24)  # the circle: r = 12 px
    inside, rim = dist < 8, (dist > 10.5) & (dist < 11.5)
    red = (np.abs(frame - rgb("red")).sum(-1) <= 3)
    assert red[inside].mean() < 0.05  # hollow: few object pixels inside
    assert (np.abs(frame[inside] - rgb("gray")).sum(-1) <= 3).mean() > 0.95  # the background shows through
    assert red[rim].mean() > 0.9
    assert red.sum() < 0.5 * (flat.frames[0].astype(int) == rgb("red")).all(-1).sum()


def test_striped_alternates_the_colour_with_a_darker_one_and_moves_with_the_object() -> None:
    flat, st = styled("flat"), styled("striped")
    assert np.array_equal(flat.masks, st.masks)
    pixels = st.frames[0][st.masks[0, 0] == 1.0].astype(int)
    light = (np.abs(pixels - rgb("red")).sum(-1) <= 3).mean()
    dark = (pixels[:, 0] < 0.7 * rgb("red")[0]).mean()
    assert light > 0.25 and dark > 0.25
    # the stripes are in object coordinates: a moving object carries its stripes along (2 px/frame at 64)
    moving = render(scene(obj(0, "square", "blue", x=20, y=32, motion=Motion("right")),
                          style="striped", size=64))
    patch = lambda t: moving.frames[t, 26:38, 14 + 2 * t:26 + 2 * t].astype(int)
    assert np.abs(patch(3) - patch(0)).max() <= 1
    assert not np.array_equal(moving.frames[3, 26:38, 14:26], moving.frames[0, 26:38, 14:26])


def test_grain_adds_deterministic_zero_mean_noise() -> None:
    flat, grain = styled("flat"), styled("grain")
    assert np.array_equal(flat.masks, grain.masks)
    diff = grain.frames.astype(float) - flat.frames.astype(float)
    assert abs(diff.mean()) < 0.5
    assert 10.5 < diff.std() < 13.5
    assert np.array_equal(styled("grain").frames, grain.frames)  # deterministic
    assert not np.array_equal(diff[0], diff[1])  # fresh noise every frame
    # a different scene gets different noise
    other = render(scene(obj(0, "circle", "red", x=20, y=25), obj(1, "square", "cyan", x=42, y=38),
                         style="grain", background="gray", size=64))
    assert not np.array_equal(other.frames[:, 50:], grain.frames[:, 50:])


@pytest.mark.parametrize(("size", "block"), [(32, 2), (64, 4), (16, 2)])
def test_pixelated_frames_and_masks_are_constant_over_blocks(size: int, block: int) -> None:
    k = size / 32
    s = scene(obj(0, "circle", "red", x=13.3 * k, y=14.6 * k),
              obj(1, "triangle", "white", x=20.7 * k, y=19.1 * k),
              style="pixelated", background="checker", pan="right", size=size, frames=3)
    r = render(s)
    assert r.frames.shape == (3, size, size, 3)
    for arr in (r.frames, r.masks[0], r.masks[1]):
        blocks = arr.reshape(arr.shape[0], size // block, block, size // block, block, *arr.shape[3:])
        assert (blocks == blocks[:, :, :1, :, :1]).all()
    flat = render(scene(*s.objects, background="checker", pan="right", size=size, frames=3))
    assert not np.array_equal(flat.frames, r.frames)
    assert r.masks[0, 0].sum() == pytest.approx(flat.masks[0, 0].sum(), rel=0.2)


# ------------------------------------------------------------------------ determinism and canvas


def test_rendering_is_bit_identical_on_repeat() -> None:
    s = scene(obj(0, "cross", "purple", x=10.2, y=11.9,
                  motion=Motion("down-right", rotate=True, scale="grow")),
              obj(1, "diamond", "orange", x=22.1, y=20.3, motion=Motion("up", bounce=True)),
              style="grain", background="dots", pan="left", frames=8)
    a, b = render(s), render(Scene.from_json(s.to_json()))
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.masks, b.masks)
    c = render(s, simulate(s))
    assert np.array_equal(a.frames, c.frames)


def test_a_64_canvas_renders_every_shape_and_style() -> None:
    objects = [obj(i, shape, color, "medium", 12 + 10 * i, 12 + 9 * i, Motion("right"))
               for i, (shape, color) in enumerate(zip(vocab.SHAPES, vocab.COLORS))]
    for style in vocab.STYLES:
        r = render(scene(*objects, style=style, background="grid", pan="down", size=64, frames=6))
        assert r.frames.shape == (6, 64, 64, 3) and r.masks.shape == (5, 6, 64, 64)
        assert (r.masks.reshape(5, -1).max(axis=1) > 0.9).all(), style  # every object is drawn


@pytest.mark.parametrize(("scale", "sign"), [("grow", 1), ("shrink", -1)])
def test_grow_and_shrink_change_the_mask_area_monotonically(scale: str, sign: int) -> None:
    moving = obj(shape="diamond", size="medium", x=32, y=32, motion=Motion(scale=scale))
    r = render(scene(moving, size=64, frames=6))
    areas = r.masks[0].sum(axis=(1, 2))
    assert (sign * np.diff(areas) > 0).all()
    expected = vocab.GROW_FACTOR**2 if scale == "grow" else vocab.SHRINK_FACTOR**2
    assert areas[-1] / areas[0] == pytest.approx(expected, rel=0.05)


def test_a_scene_without_objects_is_its_background() -> None:
    r = render(scene(background="maroon"))
    assert r.masks.shape == (0, 4, 32, 32)
    assert (r.frames.astype(int) == rgb("maroon")).all()


def test_a_mismatched_trajectory_is_rejected() -> None:
    s = scene(obj(0), frames=4)
    other = simulate(scene(obj(0), frames=5))
    with pytest.raises(ValueError, match="trajectory"):
        render(s, other)


def test_diamond_is_taller_than_wide_so_it_is_never_a_turned_square() -> None:
    m = render(scene(obj(0, "diamond", "orange", size="large", x=32.0, y=32.0), size=64)).masks[0, 0]
    rows, cols = np.nonzero(m > 0.5)
    height, width = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert height / width > 1.5
