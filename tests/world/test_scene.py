"""Scene programs: JSON round trip, validation, and the simulation's physics."""

import json
import math

import numpy as np
import pytest

from anyframe.errors import AnyframeInputError
from anyframe.world import vocab
from anyframe.world.scene import Event, Motion, Scene, WorldObject, simulate


def _obj(i=0, shape="circle", color="red", size="small", x=16.0, y=16.0, **motion):
    return WorldObject(i, shape, color, size, x, y, Motion(**motion))


def test_json_round_trip_and_validation():
    scene = Scene(
        objects=(_obj(0, direction="right", bounce=True, speed="quickly"), _obj(1, "cross", "blue", "large", 26, 8, scale="grow", rotate=True)),
        events=(Event("collision", 0, other=1, effect="change_color", color="green"), Event("disappear", 1, frame=12)),
        background="checker", style="striped", pan="left", size=64, frames=20,
    )
    again = Scene.from_json(scene.to_json())
    assert again == scene
    assert json.loads(scene.to_json())["version"] == 1


@pytest.mark.parametrize(
    "mutate,fragment",
    [
        (lambda d: d["objects"][0].update(shape="hexagram"), "shape"),
        (lambda d: d["objects"][0].update(color="mauve"), "colour"),
        (lambda d: d["objects"][0]["motion"].update(direction="sideways"), "direction"),
        (lambda d: d.update(background="plaid"), "background"),
        (lambda d: d.update(style="oil"), "style"),
        (lambda d: d["objects"][0].update(id=1), "duplicate"),
        (lambda d: d.update(events=[{"type": "appear", "object": 0, "frame": 99}]), "frame"),
        (lambda d: d.update(events=[{"type": "collision", "object": 0, "other": 0, "effect": "stop"}]), "collision"),
        (lambda d: d["objects"][0].update(wings=2), "malformed"),
        (lambda d: d.update(version=7), "version"),
    ],
)
def test_invalid_programs_are_clear_errors(mutate, fragment):
    data = Scene(objects=(_obj(0), _obj(1, "square"))).to_dict()
    mutate(data)
    with pytest.raises(AnyframeInputError, match=fragment):
        Scene.from_dict(data)


def test_not_json():
    with pytest.raises(AnyframeInputError):
        Scene.from_json("{nope")


def test_straight_motion_and_speed():
    tr = simulate(Scene(objects=(_obj(direction="left", x=25), _obj(1, direction="down-right", speed="slowly", x=5, y=5))))
    np.testing.assert_allclose(np.diff(tr.x[0]), -1.0)
    np.testing.assert_allclose(np.diff(tr.y[0]), 0.0)
    step = vocab.SPEEDS["slowly"] / math.sqrt(2)
    np.testing.assert_allclose(np.diff(tr.x[1]), step)
    np.testing.assert_allclose(np.diff(tr.y[1]), step)


def test_speeds_scale_with_the_canvas():
    tr = simulate(Scene(objects=(_obj(direction="right", x=10, y=10),), size=64))
    np.testing.assert_allclose(np.diff(tr.x[0]), 2.0)
    assert tr.radius[0, 0] == pytest.approx(2 * vocab.SIZES["small"])


def test_bounce_keeps_the_object_inside():
    tr = simulate(Scene(objects=(_obj(direction="right", speed="quickly", bounce=True, x=20, size="large"),), frames=40))
    r = tr.radius[0]
    assert (tr.x[0] >= r - 1e-9).all() and (tr.x[0] <= 32 - r + 1e-9).all()
    assert (np.diff(tr.x[0]) < 0).any() and (np.diff(tr.x[0]) > 0).any()  # it turned around


def test_collision_recolours_or_stops_at_the_touching_frame():
    objs = (_obj(0, x=6, direction="right"), _obj(1, "square", "blue", x=26, direction="left"))
    recolour = simulate(Scene(objects=objs, events=(Event("collision", 0, other=1, effect="change_color", color="green"),)))
    t = recolour.event_frames[0]
    assert t is not None
    gap = abs(recolour.x[0] - recolour.x[1]) - recolour.radius[0] - recolour.radius[1]
    assert gap[t] <= 0 < gap[t - 1]  # the first touching frame
    assert recolour.color[0][t - 1] == "red" and all(c == "green" for c in recolour.color[0][t:])
    stop = simulate(Scene(objects=objs, events=(Event("collision", 0, other=1, effect="stop"),)))
    assert stop.event_frames[0] == t
    np.testing.assert_allclose(np.diff(stop.x[0][t:]), 0.0)
    missed = simulate(Scene(objects=(_obj(0, x=6, y=4, direction="right"), _obj(1, "square", x=26, y=28, direction="left")),
                            events=(Event("collision", 0, other=1, effect="stop"),)))
    assert missed.event_frames == [None]


def test_appear_disappear_grow_shrink_rotate():
    scene = Scene(objects=(_obj(0, scale="grow"), _obj(1, "square", x=8, scale="shrink", rotate=True)),
                  events=(Event("appear", 0, frame=4), Event("disappear", 1, frame=10)))
    tr = simulate(scene)
    assert not tr.visible[0, :4].any() and tr.visible[0, 4:].all()
    assert tr.visible[1, :10].all() and not tr.visible[1, 10:].any()
    assert tr.radius[0, -1] == pytest.approx(tr.radius[0, 0] * vocab.GROW_FACTOR)
    assert tr.radius[1, -1] == pytest.approx(tr.radius[1, 0] * vocab.SHRINK_FACTOR)
    assert tr.angle[1, -1] - tr.angle[1, 0] == pytest.approx(2 * math.pi * vocab.ROTATION_TURNS)
    assert tr.angle[0, -1] == tr.angle[0, 0]
    assert tr.event_frames == [4, 10]


def test_camera_pan_moves_everything_on_screen():
    still = simulate(Scene(objects=(_obj(),), pan="right", background="checker"))
    np.testing.assert_allclose(np.diff(still.x[0]), -vocab.PAN_SPEED)  # the world slides left on screen
    np.testing.assert_allclose(still.camera[:, 0], vocab.PAN_SPEED * np.arange(16))
