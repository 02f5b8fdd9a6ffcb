"""The shapes world's oracle, part 1: read any clip — detect objects per frame and track them.

    detections = detect(frames)          # per frame: [Detection(shape, color, box, mask, centroid, ...)]
    tracks = track(detections)           # [Track(id, frames, centroids, shapes, colors, areas)]
    style = classify_style(frames)       # flat | outline | striped | grain | pixelated

Nothing here looks at a scene program: the oracle reads uint8 frames ``[T, H, W, 3]`` — a true render
or a model's imperfect clip — and reports what it sees; :mod:`anyframe.world.scoring` compares that
with the scene the clip should show. ``k = H / 32`` scales every distance given "at 32 px".

1. Background (:func:`background_model`). Objects are painted in the bright, saturated colours of
   :data:`vocab.COLORS` (the ``striped`` style also at half brightness); backgrounds and patterns are
   dark (< 110 in every channel). *Sure background* pixels are dark with no bright pixel within 2k px;
   each pixel's background ``B`` is a small Gaussian average of nearby sure-background pixels (the
   nearest one inside objects), and each frame's two background tones (a pattern's cells) are kept for
   object rims.

2. Pixels → colours (:func:`pixel_colors`). Every pixel ``p`` is read as a mix ``p ≈ B + α (P − B)`` of
   its background and one *paint* ``P`` — a vocabulary colour ``C`` or its dark stripe ``C / 2``:
   ``α = (p − B)·(P − B) / |P − B|²`` is the paint's coverage and ``tan θ = |p − B − α (P − B)| /
   (α |P − B|)`` how far off the paint's direction the pixel points. Seen from the background, an
   anti-aliased edge pixel points exactly like its paint whatever its coverage, so colours are named by
   direction (a perceptual distance that ignores brightness and mixing) and membership by coverage: a
   pixel is *core* of colour c when its best-pointing paint is C with α ≥ 0.5, tan θ ≤ 0.45 and
   ``|p − B| ≥ 30`` (above grain noise), *stripe* when it is C / 2 (or a mix of C and C / 2).

3. Colours → objects (:func:`detect`). A clip of uniform f × f blocks (the ``pixelated`` style) is read
   at block resolution — it is a flat render there. Per frame and colour, the core pixels (plus, in a
   clip that :func:`stripe_fraction` finds striped, the stripe pixels within a band's width of them)
   form a mask; its 8-connected components with at least ``MIN_CORE_PX · k²`` core pixels are objects,
   minus the seams and mis-read rims at other objects' edges (:func:`_drop_slivers`). Holes are filled
   (the ``outline`` style draws a ring). A soft coverage patch (member α, 1 in holes, rim α from
   :func:`_rim_alpha`) gives the area and the centroid.

4. Shapes (:func:`shape_residuals`). Analysis by synthesis, rotation invariant by construction and exact
   at a few pixels: each of the five shapes is drawn with the renderer's own signed distance function and
   anti-aliasing at the centroid, with the radius that gives the observed area and at rotations around
   the orientation its moments give, and compared with the coverage patch (relative squared error). The
   posterior is ``softmax(−residual / SHAPE_TEMPERATURE)``; the confidence is the posterior of the best
   shape times ``exp(−max(0, residual − FIT_RESIDUAL) / FIT_SCALE)`` (a merged blob fits no shape),
   halved at the canvas edge and against another object. Measured on clean objects (fully inside, no
   other object within reach) of rendered training scenes: 100 % at 32 and 64 px in the flat, outline,
   striped and grain styles, ≥ 99 % pixelated (tests/world/test_oracle.py; :func:`calibration_report`
   recomputes every calibrated constant).

5. Tracking (:func:`track`): Hungarian assignment frame to frame on predicted position, colour, shape and
   area, with fragments, merged blobs and hidden objects handled explicitly, and a final stitching pass.

6. Style (:func:`classify_style`) from image statistics (:func:`style_statistics`).

Modules, one step each: ``colors`` (1–2), ``detect`` (3), ``shapes`` (4), ``track`` (5), ``style`` (6);
``calibration`` recomputes the evidence behind the calibrated constants.
"""

from anyframe.world.oracle.calibration import calibration_report
from anyframe.world.oracle.colors import PixelColors, background_image
from anyframe.world.oracle.detect import Detection, block_factor, detect
from anyframe.world.oracle.shapes import AREA_PER_R2, FIT_RESIDUAL, SHAPE_SDFS, shape_residuals
from anyframe.world.oracle.style import classify_style
from anyframe.world.oracle.track import Track, track

# the names importers use (anyframe.world.scoring, anyframe.world.prompt_scoring, tests, benchmarks)
__all__ = [
    "AREA_PER_R2", "FIT_RESIDUAL", "SHAPE_SDFS", "Detection", "PixelColors", "Track", "background_image",
    "block_factor", "calibration_report", "classify_style", "detect", "shape_residuals", "track",
]  # fmt: skip
