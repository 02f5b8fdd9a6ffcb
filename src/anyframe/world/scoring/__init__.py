"""The shapes world's oracle, part 2: score a clip against the scene it should show.

    scores = score_clip(frames, scene)                                   # every applicable key
    scores = score_clip(frames, scene, keys=["presence", "event"], keyframes={0: image})

The truth is the scene program's simulation and render (:func:`truth_of`: frames, and per-object
visible-coverage masks). The clip is read by :mod:`anyframe.world.oracle` (detections → tracks) and is
compared pixel by pixel with the truth only where a key says so (keyframe fidelity, flicker). The scene
may come from a program or from a parsed prompt turned into one; a prompt-only (t2v) clip need not put
objects where the program does, so every content key matches objects by what they look like and how
they move, not where they are (spatial_relation and keyframe fidelity are the position-bound keys).

Conventions
-----------
* ``k = H / 32``: distances and speeds of the vocabulary are "px at 32 px" and scale with the canvas.
* *Clean* frames of a true object (:attr:`Truth.clean`): it is visible, ≥ 90 % of its analytic area
  (``AREA_PER_R2[shape] · r²``) shows in its truth mask (neither occluded nor cut by the canvas edge), that
  area is readable (≥ MIN_READABLE_PX pixels at the analysed resolution: blocks for the pixelated style),
  and no other object *of the same colour* touches it (two such objects read as one blob). *Isolated*
  frames: clean, and no other object at all touches it (its centroid is then exact). Where a key needs to
  see an object it uses clean frames only: scoring is tolerant exactly where the truth itself is hidden,
  and an object the truth shows clean in fewer than two frames (no track can form) is not scored (nor
  matched).
* Tracks with ≥ MIN_MATCH_TRACK (2) detections can be matched; *substantial* tracks (≥ MIN_TRACK = 3) count
  as objects.
* *Matching* (:func:`match_objects`): true objects ↔ tracks one-to-one (Hungarian) on ``2·(1 − colour
  agreement) + 1·(1 − shape agreement) + 0.5·position term + 0.5·motion term + 1·(1 − coverage)``, no
  match above MAX_MATCH_COST. Colour agreement: share of the track's detections (where the object is
  visible) in the object's true colour *at that frame*; shape agreement: the track's confidence-weighted
  vote share of the true shape; position / motion terms (0..1): mean distance to the true centre /
  (canvas / 2), mean error of per-frame displacement / 2k; coverage: share of the object's clean frames
  the track is detected in. Appearance dominates; position and motion break ties between look-alikes.
* *Appearance chains* (:func:`object_chains`): a matched object's matched-track detections, completed at
  other frames by confident, similar-sized, unclaimed detections of its true colour nearest to its last
  position — ungated, so they follow an object through shuffled or jittered frames and split tracks.

Keys (in [0, 1], higher is better, unless stated; ``None`` when not applicable)
-------------------------------------------------------------------------------
``presence``
    mean over objects with a clean frame of ``1[matched ∧ colour agreement ≥ 0.5 ∧ the track's shape vote
    is the true shape ∧ coverage ≥ 0.5]`` — shape *and* colour must both be right.
``color_binding`` (≥ 2 objects)
    a second matching, shape first (``1·(1 − shape agreement) + 0.5·(1 − colour agreement) +
    0.25·position``): the track that carries an object's shape must carry its colour — mean over objects of
    ``1[that track's shape vote is the object's shape, coverage ≥ 0.5, colour agreement ≥ 0.5]``.
    Swapping two objects' colours scores 0 for both.
``count``
    ``K`` substantial tracks, ``N`` true objects, ``N_eff`` objects with ≥ min(3, visible frames) clean
    frames (the ones a reader can count): 1 if ``N_eff ≤ K ≤ N``, ``K / N_eff`` when fewer (missing objects),
    ``N / K`` when more (extra objects).
``motion_direction``
    per matched object, over windows ``[t, t + w]`` (``w = max(2, T // 4)``) where it is clean at both ends
    in the truth, its true screen velocity is constant inside (no bounce, collision or stop) and its track
    is detected within a frame of both ends: true displacement ``D`` vs detected ``D̂`` (screen space: a
    camera pan is in the truth already). A window passes iff ``|D| ≤ 0.3 k w`` (still) and
    ``|D̂| ≤ 0.3 k w + 1.5 k``, or (moving) ``angle(D̂, D) ≤ 22.5°`` (half the angle between neighbouring
    directions) and ``|D̂| ≥ 0.4 |D|``. Key: mean over objects of their passing fraction (an unmatched
    object with windows: 0). Objects are found by their looks, so moving the wrong object fails: the
    right one stands still (or moves the other way), the wrong one moves.
``spatial_relation`` (≥ 2 objects)
    for every pair of matched objects and frame where both are clean and both tracks detected: on each axis
    where the true offset ``|Δ| > 0.5 (r_a + r_b) + k``, the detected offset must have the same SIGN (a
    mirrored clip fails — VBench's scorer ignores the sign). Mean over (pair, frame) of ``1[every such axis
    agrees]``; a pair with an unmatched object fails its checks.
``event`` (scenes with an event the truth shows: the object clean before and after it)
    ``positive × negative``, on appearance chains. *positive*: mean over checkable events of 1 when it
    happens within ±2 frames of the true frame — ``change_color``: the chain's colours are best explained
    by the old colour before and the new one after a change frame t̂ (≤ 25 % of detections disagreeing; an
    unseen gap around the true frame counts as the change frame), and the two objects touch around it
    (where the truth shows the other one); ``stop``: the chain's per-frame velocity is best explained by the
    true velocity before and after a change frame t̂ and fits after it within 0.5 k px/frame, plus the
    contact; ``appear`` / ``disappear``: the chain's first / last detection in the object's colour (within
    the truth's own first clean frame after an appearance / last before a disappearance). *negative*: mean
    over objects of 1 when nothing happens that the scene does not say — ≥ 80 % of the chain (at frames
    where the truth shows the object) in one colour without a colour change, seen from its first clean frame (±2) without an appearance, until its last (±2) without a
    disappearance.
``identity_persistence``
    per object with ≥ 2 clean frames: the share of its clean frames (minus those where its track is hidden
    under another detection in the clip) in which its matched track has a detection of its true colour;
    mean over objects (unmatched: 0). Splits, swaps and shuffled frames fail.
``keyframe_psnr`` (dB, capped at PSNR_CAP = 100) and ``keyframe_ssim`` (with ``keyframes``)
    means over the keyframes of ``10 log10(255² / MSE)`` (MSE over all pixels and channels) and of
    :func:`ssim` (Gaussian window σ = 1.5, 11 × 11, per RGB channel).
``dynamic_degree`` (scenes where something moves)
    ``min(1, D̂ / (0.85 D))`` (:func:`dynamic_speeds`): ``D̂`` and ``D`` the chains' and the truth's mean
    displacement per frame, ``|c(t + w) − c(t)| / w``, over the same (object, t) pairs; 85 % of the true
    motion counts as full (coarse pixelated centroids under-measure). A frozen clip scores 0. Extra keys:
    ``dynamic_degree_px`` (``D̂`` in px/frame at the clip's resolution), ``dynamic_degree_flow`` (mean over
    frame pairs of the mean of the top 5 % OpenCV DIS optical-flow magnitudes, px/frame — VBench also
    takes the top 5 %) and ``dynamic_degree_flow_ratio`` (``min(1, flow / flow of the truth)``).
``motion_smoothness``
    ``1 − clip((R − 0.5 k) / 1.5 k, 0, 1)``, ``R`` the mean over chains (weighted by their triples) of the
    median ``|c(t+1) − 2c(t) + c(t−1)|`` over consecutive triples of confident detections. Motion in the
    world is piecewise linear: the median ignores the few bounce frames, 0.5 k px is above the centroid
    noise of true renders; shuffled frames or a ±2k-px shake score ≈ 0.
``trajectory_monotone`` (scenes where something moves)
    per matched object, over consecutive frames (t, t + 1) where it is clean in the truth, moves at least
    0.3 k px/frame there, and its chain has a confident centroid at both: the step must not go back along
    the true direction of motion, ``(ĉ(t+1) − ĉ(t)) · v̂ ≥ −MONOTONE_SLACK·k``; mean over objects of the
    passing fraction (an unmatched object with such frames: 0). Interpolation's "the path between the
    endpoints is monotone": a clip that goes back and forth, or reverses, fails.
``temporal_flicker``
    VBench's ``(255 − MAD) / 255`` on static regions — pixels no true object and no detection covers
    (dilated by 2k px) in either of two consecutive frames — with MAD taken as the *excess* of the clip's
    mean absolute frame difference there over the true render's (grain noise and a pan are in the truth,
    not flicker): ``(255 − max(0, MAD_clip − MAD_truth)) / 255``. Extra key ``temporal_flicker_raw``:
    VBench's ``(255 − MAD_clip) / 255``.
``mask_iou`` (with ``masks`` ``[K, T, H, W]``)
    predicted masks (≥ 0.5) ↔ true visible masks (≥ 0.5) matched by the Hungarian algorithm on IoU; per
    true object ``Σ_t |P ∩ G| / Σ_t |P ∪ G|`` (unmatched: 0), mean over objects that are ever visible.
``style`` (scenes whose true render shows its style)
    ``1[oracle.classify_style(clip) == scene.style]``; ``None`` where the truth's own render is classified
    otherwise (:attr:`Truth.style_legible`: e.g. one small outlined cross has no inside and looks flat) —
    about 1 % of the built-in cases.
``edit_accuracy`` (with ``edit_source``; ``scene`` is the edit's target)
    ``change × preserve``, objects paired across source and target by id. *change*: mean over what the
    two programs differ in — an added object present (presence × its motion score), a removed object absent
    (no unmatched substantial track with its colour and shape), a recoloured object present in its new
    colour, a re-moved object's motion score against the target, a new style classified; *preserve*: mean
    over each unchanged object's presence × motion score, the count and (unless changed) the style. Style
    terms only where the target's true render shows its style.

Modules
-------
One module per job: ``truth`` (the truth and its clean frames), ``reading`` (what the oracle reads in the
clip), ``matching`` (objects ↔ tracks), ``chains`` (appearance chains); per group of keys ``objects``
(presence, color_binding, count), ``motion`` (motion_direction), ``relations`` (spatial_relation),
``events`` (event), ``identity`` (identity_persistence), ``fidelity`` (keyframe_psnr, keyframe_ssim),
``dynamics`` (dynamic_degree, motion_smoothness, trajectory_monotone), ``flicker`` (temporal_flicker),
``masks`` (mask_iou), ``edits`` (edit_accuracy); and ``score`` (:func:`score_clip`, :data:`KEYS`).
"""

from anyframe.world.scoring.chains import object_chains
from anyframe.world.scoring.events import EVENT_TOLERANCE, _change_frame
from anyframe.world.scoring.fidelity import PSNR_CAP, psnr
from anyframe.world.scoring.matching import match_by_shape, match_objects
from anyframe.world.scoring.motion import ANGLE_TOLERANCE, motion_direction, motion_per_object, motion_windows
from anyframe.world.scoring.objects import color_binding, presence_verdicts
from anyframe.world.scoring.reading import MIN_TRACK, Reading, read_clip
from anyframe.world.scoring.score import KEYS, score_clip
from anyframe.world.scoring.truth import truth_of

# the names importers use (anyframe.world.prompt_scoring, anyframe.evaluation, tests, benchmarks)
__all__ = [
    "ANGLE_TOLERANCE", "EVENT_TOLERANCE", "KEYS", "MIN_TRACK", "PSNR_CAP", "Reading", "_change_frame",
    "color_binding", "match_by_shape", "match_objects", "motion_direction", "motion_per_object",
    "motion_windows", "object_chains", "presence_verdicts", "psnr", "read_clip", "score_clip", "truth_of",
]  # fmt: skip
