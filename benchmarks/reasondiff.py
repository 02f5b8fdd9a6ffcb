"""ReasonDiff (issue 26): where does an unpaired image land, and does the action around it come out right?

    python benchmarks/reasondiff.py --system 'TI2V@0=checkpoints/anyframe-world-s@frame0' \\
        --system 'narrator + keyframe (control)=runs/world-s-reasondiff-control/pipeline@narrator' \\
        --system 'ReasonDiff=runs/world-s-reasondiff-align/pipeline@narrator' \\
        --reference 'TI2V@0' --reference 'narrator + keyframe (control)' --n 20 --cache runs/rd-eval/cache

Cases: the world's unpaired cases (:mod:`anyframe.world.unpaired`): a scene, a short text describing one object's
action (nothing about time), and the scene's frame at the *start*, *middle* or *end* of the clip as the condition
image; ``--n`` per position, in distribution (``train``) and with held-out colours and shapes (``ood_color_shape``),
scene seeds from ``--seed`` on. A system is ``LABEL=MODEL@MODE``: ``frame0`` puts the image at frame 0 (TI2V, the
paper's naive baseline), ``narrator`` lets the world narrator place it (and, on a ReasonDiff model, narrate every
frame), ``placed`` puts it where the narrator says but every frame reads the prompt (on a ReasonDiff model: its
per-frame narratives ablated at inference; elsewhere the same as ``narrator``), ``true`` puts it at its true frame
(an oracle placement: the ceiling of placement), ``caption`` places it by the narrator and gives the model the
scene's whole true caption instead of the text (an oracle text: background, style, every object's motion — what
the short action text leaves out; the ceiling of a complete description), ``described`` places it by the narrator and
gives the model the world caption of the narrator's own solved scene as one global prompt (no oracle: the
description ReasonDiff's narratives carry, frame by frame, said once — the fair baseline for how much of
ReasonDiff's gain is the description itself; the narrator knows the text's object's motion and the image's look,
and has the image's other objects stand still).

Measures, per clip, by the oracle (95 % bootstrap intervals over cases):

- *position accuracy*: the frame of the generated clip closest to the image (highest PSNR) is the image's true
  frame (exact; and within ±1 frame);
- *on path before / after*: the share of the frames before / after the true anchor frame in which the object the
  text is about is where it should be: the clip's track of it has a detection whose centre lies within the
  object's radius of its true centre (a missing detection is off the path). This sees *when* the action
  happens — an end image put at frame 0 starts the action where it should finish;
- *action before / after*: ``motion_direction``'s windows (constant-velocity stretches, judged by direction and
  distance) of the object the text is about — its action — that end at or before the true anchor frame / start at
  or after it: the share that pass (start cases have no *before*, end cases no *after*). The other objects'
  motions are given by neither the text nor the image; the JSON also holds every object's windows
  (``action_before_all`` / ``action_after_all``). Windows judge displacement only, not place: a clip that moves
  the object the right way from the wrong place passes them;
- *identity*: ``identity_persistence`` against the scene;
- *prompt score*: the text's own scores (:func:`anyframe.world.prompt_scoring.score_prompt`: presence and motion
  direction of what the text names) — the analog of the paper's CLIP-text.

Writes ``benchmarks/results/<--name>.{json,md}`` and ``<--name>_examples.png``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from rich.progress import track

from anyframe.errors import AnyframeInputError
from anyframe.evaluation.cache import weights_key
from anyframe.evaluation.targets import difference_interval, format_difference, mean_interval
from anyframe.world import vocab
from anyframe.world.captions import caption
from anyframe.world.render import render
from anyframe.world.sampling import scene_for_seed
from anyframe.world.scoring import match_objects, read_clip, truth_of
from anyframe.world.scoring.fidelity import psnr
from anyframe.world.scoring.identity import identity_persistence
from anyframe.world.scoring.motion import motion_windows
from anyframe.world.unpaired import POSITIONS, make_unpaired

RESULTS = Path(__file__).parent / "results"
MODES = ("frame0", "narrator", "placed", "true", "caption", "described")
SPLITS = ("train", "ood_color_shape")
SUMMARY_KEYS = ("position_exact", "position_near", "path_before", "path_after", "action_before", "action_after", "action_before_all",
                "action_after_all", "identity", "prompt_presence", "prompt_direction")
KEYS = ("position_exact", "position_near", "path_before", "path_after", "action_before", "action_after", "identity", "prompt_presence",
        "prompt_direction")


def unpaired_cases(n: int, seed: int) -> list[dict]:
    cases = []
    for split in SPLITS:
        for p, position in enumerate(POSITIONS):
            s = seed + 10_000 * p + (0 if split == "train" else 500_000)
            while sum(1 for c in cases if c["split"] == split and c["position"] == position) < n:
                scene = scene_for_seed(s, split)
                s += 1
                if not scene.objects or any(o.motion.direction is None for o in scene.objects):
                    continue
                case = make_unpaired(scene, np.random.default_rng(s), position)
                cases.append({"id": f"{split}-{position}-{s - 1}", "split": split, "position": position,
                              "scene": case.scene, "text": case.text, "frame": case.image_frame,
                              "object": [o.id for o in case.scene.objects].index(case.object_id),
                              "image": render(case.scene).frames[case.image_frame]})
    return cases


def landed(frames: np.ndarray, image: np.ndarray) -> int:
    return int(np.argmax([psnr(f, image) for f in frames]))


def action(truth, reading, match: dict[int, int], anchor: int, obj: int | None = None) -> tuple[float | None, float | None]:
    """The share of ``motion_windows`` that pass among those that end at or before ``anchor`` / start at or
    after it: of the object ``obj`` (the text's), or of every object (None). ``match``: ``match_objects``'."""
    windows = [w for w in motion_windows(truth, reading, match) if w.counted and (obj is None or w.i == obj)]
    span = max(2, truth.traj.num_frames // 4)  # motion_windows' window length
    before = [float(w.passed) for w in windows if w.t + span <= anchor]
    after = [float(w.passed) for w in windows if w.t >= anchor]
    return (float(np.mean(before)) if before else None), (float(np.mean(after)) if after else None)


def on_path(truth, reading, match: dict[int, int], anchor: int, obj: int) -> tuple[float | None, float | None]:
    """The share of frames before / after ``anchor`` (where the truth shows object ``obj`` clean) in which the
    clip's track of ``obj`` has a detection whose centre lies within the object's radius of its true centre
    (an unmatched object, or a frame without a detection, is off the path)."""
    track = reading.tracks[match[obj]] if obj in match else None
    radius = vocab.SIZES[truth.scene.objects[obj].size] * truth.k
    true = truth.position(obj)
    hits: dict[bool, list[float]] = {True: [], False: []}
    for t in range(truth.traj.num_frames):
        if t == anchor or not truth.clean[obj, t]:
            continue
        at = np.nonzero(track.frames == t)[0] if track is not None else []
        ok = len(at) > 0 and float(np.linalg.norm(track.centroids[at[0]] - true[t])) <= radius
        hits[t < anchor].append(float(ok))
    return tuple(float(np.mean(hits[side])) if hits[side] else None for side in (True, False))


def prompt_scores(frames: np.ndarray, text: str) -> tuple[float | None, float | None]:
    from anyframe.world.prompt_scoring import score_prompt

    try:
        s = score_prompt(frames, text, keys=["presence", "motion_direction"])
    except AnyframeInputError:
        return None, None
    return s["presence"], s["motion_direction"]


class System:
    def __init__(self, spec: str, steps: int | None = None):
        label, sep, rest = spec.partition("=")
        path, at, mode = rest.rpartition("@")
        if not sep or not at or mode not in MODES:
            raise SystemExit(f"error: --system {spec}: want LABEL=MODEL@{'|'.join(MODES)}")
        if not Path(path, "model_index.json").is_file():
            raise SystemExit(f"error: --system {spec}: {path} is not a pipeline folder")
        self.label, self.path, self.mode, self.steps = label, path, mode, steps
        self.pipe = self.narrator = None

    def load(self) -> None:  # only when measured (a cached system is not loaded at all)
        from anyframe.pipelines import load_pipeline

        self.pipe = load_pipeline(self.path, "float32")
        self.pipe.set_progress_bar_config(disable=True)
        if self.mode in ("narrator", "placed", "caption", "described"):
            from anyframe.narrators import narrator_for

            self.narrator = narrator_for("world")

    def cache_file(self, folder: Path, n: int, seed: int) -> Path:
        """One file per (weights, mode, steps, cases): :func:`weights_key`."""
        return folder / (weights_key(self.path, self.mode, self.steps, n, seed) + ".json")

    def generate(self, case: dict, seed: int) -> tuple[np.ndarray, int | None]:
        from anyframe.io import to_uint8
        from anyframe.pipelines import Keyframe

        frames = case["scene"].frames
        index = {"frame0": 0, "true": case["frame"]}.get(self.mode)
        prompt = caption(case["scene"]) if self.mode == "caption" else case["text"]
        if self.mode in ("placed", "caption"):  # the narrator's position only: no per-frame narratives reach the model
            index = self.narrator.narrate(case["image"], case["text"], frames).position
        # described: the pipeline's narrator_prompt (the narrator's caption of the whole clip becomes the prompt)
        out = self.pipe(prompt, keyframes=[Keyframe(case["image"], index)], seed=seed,
                        num_frames=frames, height=case["scene"].size, width=case["scene"].size,
                        narrator=self.narrator if self.mode in ("narrator", "described") else None,
                        narrator_prompt=self.mode == "described",
                        **({"num_inference_steps": self.steps} if self.steps else {}))
        placed = out.keyframe_indices[0] if out.keyframe_indices else None
        return to_uint8(out.frames[0]), placed


def example_ids(cases: list[dict]) -> list[str]:
    """The cases shown in the examples figure: the first middle and end case of each split."""
    return [next(c["id"] for c in cases if c["split"] == split and c["position"] == position)
            for split in SPLITS for position in ("middle", "end")]


def score(frames: np.ndarray, placed: int | None, case: dict) -> dict:
    """One generated clip's scores (the module doc)."""
    truth, reading = truth_of(case["scene"]), read_clip(frames)
    match = match_objects(truth, reading)
    at = landed(frames, case["image"])
    before, after = action(truth, reading, match, case["frame"], case["object"])
    before_all, after_all = action(truth, reading, match, case["frame"])
    path_before, path_after = on_path(truth, reading, match, case["frame"], case["object"])
    presence, direction = prompt_scores(frames, case["text"])
    return {
        "split": case["split"], "position": case["position"], "placed": placed, "landed": at,
        "position_exact": float(at == case["frame"]), "position_near": float(abs(at - case["frame"]) <= 1),
        "path_before": path_before, "path_after": path_after,
        "action_before": before, "action_after": after, "action_before_all": before_all, "action_after_all": after_all,
        "identity": identity_persistence(truth, reading, match),
        "prompt_presence": presence, "prompt_direction": direction,
    }


def generate(system: System, cases: list[dict]) -> tuple[np.ndarray, list[int | None]]:
    """Every case's clip (uint8 ``[N, T, H, W, 3]``, in case order) and where the system placed the image."""
    system.load()
    clips, placed = [], []
    for i, case in enumerate(track(cases, description=f"{system.label}", transient=True,
                                   disable=not sys.stderr.isatty())):
        frames, at = system.generate(case, seed=1000 + i)
        clips.append(frames)
        placed.append(at)
    return np.stack(clips), placed


def write_cache(file: Path, cases: list[dict], clips: np.ndarray, placed: list[int | None]) -> None:
    """The clips (``.npz``) and the case ids and placements (``.json``), each file replaced atomically: the
    scores are computed from the clips on every call, so a changed measure needs no new generation."""
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(f".{file.stem}.tmp.npz")
    np.savez_compressed(tmp, clips=clips)
    tmp.replace(file.with_suffix(".npz"))
    tmp = file.with_name(f".{file.name}.tmp")
    tmp.write_text(json.dumps({"cases": [c["id"] for c in cases], "placed": placed}))
    tmp.replace(file)


def read_cache(file: Path, cases: list[dict]) -> tuple[np.ndarray, list[int | None]] | None:
    """What :func:`write_cache` wrote, if it is for these cases (else None)."""
    try:
        data = json.loads(file.read_text())
        with np.load(file.with_suffix(".npz")) as arrays:
            clips = arrays["clips"]
    except (OSError, ValueError, KeyError):
        return None
    if data.get("cases") != [c["id"] for c in cases] or len(clips) != len(cases):
        return None
    return clips, data["placed"]


def summarise(rows: dict, references: dict[str, dict]) -> dict:
    """Per key, split and position: the mean with its interval, and (``vs``) the paired difference from each
    reference system (label → its rows) with its interval."""
    out = {}
    for key in SUMMARY_KEYS:
        for split in (None, *SPLITS):
            for position in (None, *POSITIONS):
                sel = {k: r[key] for k, r in rows.items() if r[key] is not None
                       and (split is None or r["split"] == split) and (position is None or r["position"] == position)}
                if not sel:
                    continue
                entry = {"n": len(sel), "mean": float(np.mean(list(sel.values()))), "interval": mean_interval(sel),
                         "vs": {}}
                for name, control in references.items():
                    ref = {k: control[k][key] for k in sel if k in control and control[k][key] is not None}
                    if ref:
                        entry["vs"][name] = {"mean": float(np.mean([sel[k] - ref[k] for k in ref])),
                                             "interval": difference_interval(ref, {k: sel[k] for k in ref})}
                out[f"{key}@{split or 'all'}@{position or 'all'}"] = entry
    return out


def _fmt(e: dict | None) -> str:
    if not e:
        return "—"
    iv = e.get("interval")
    return f"{e['mean']:.3f}" + (f" [{iv[0]:.3f}, {iv[1]:.3f}]" if iv else "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--system", action="append", required=True,
                    help="LABEL=MODEL@frame0|narrator|placed|true; repeat")
    ap.add_argument("--reference", action="append", default=[],
                    help="a LABEL the others are compared with, paired over cases; repeat for several tables "
                         "(default: the first system)")
    ap.add_argument("--n", type=int, default=20, help="cases per position and split")
    ap.add_argument("--steps", type=int, help="sampling steps (default: each model's own)")
    ap.add_argument("--seed", type=int, default=8_800_000)
    ap.add_argument("--name", default="reasondiff")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--cache", type=Path, help="a folder of per-system results: a system measured before (same "
                    "weights, mode, --steps, --n, --seed) is read back, not generated again — so systems can be "
                    "measured as their runs finish, and a last call assembles the table")
    ap.add_argument("--show", action="append", metavar="LABEL",
                    help="a system in the examples figure (repeat; default: every system)")
    args = ap.parse_args(argv)
    systems = [System(spec, args.steps) for spec in args.system]
    references = args.reference or [systems[0].label]
    if unknown := [r for r in [*references, *(args.show or [])] if r not in {s.label for s in systems}]:
        raise SystemExit(f"error: --reference/--show {unknown[0]!r} is not a --system label")
    cases = unpaired_cases(args.n, args.seed)
    per_system, examples = {}, []
    if len({s.label for s in systems}) != len(systems):
        raise SystemExit("error: two systems share a label")
    shown = set(example_ids(cases))
    for system in systems:
        start = time.perf_counter()
        cached = system.cache_file(args.cache, args.n, args.seed) if args.cache else None
        got = read_cache(cached, cases) if cached is not None and cached.is_file() else None
        if got is None:
            got = generate(system, cases)
            if cached is not None:
                write_cache(cached, cases, *got)
            how = f"{time.perf_counter() - start:.0f} s"
        else:
            how = f"cached: {cached}"
        clips, placed = got
        per_system[system.label] = {c["id"]: score(clip, at, c) for c, clip, at in zip(cases, clips, placed)}
        if args.show is None or system.label in args.show:
            examples += [(system.label, c, clip) for c, clip in zip(cases, clips) if c["id"] in shown]
        print(f"{system.label:28s} {len(cases)} cases ({how})", flush=True)
    summaries = {label: summarise(rows, {r: per_system[r] for r in references if r != label})
                 for label, rows in per_system.items()}
    command = "python benchmarks/reasondiff.py " + shlex.join(argv or sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"command": command, "n": args.n, "seed": args.seed, "references": references,
               "summaries": summaries, "cases": per_system}
    tmp = args.out / f".{args.name}.json.tmp"
    tmp.write_text(json.dumps(payload, indent=1, default=str))
    tmp.replace(args.out / f"{args.name}.json")
    if examples:
        from PIL import Image

        from anyframe.io import filmstrip

        order = {cid: i for i, cid in enumerate(example_ids(cases))}  # by case, then system
        examples.sort(key=lambda e: order[e[1]["id"]])
        strips = [filmstrip(frames, marked=(case["frame"],)) for _, case, frames in examples]
        width = max(s.shape[1] for s in strips)
        canvas = np.zeros((sum(s.shape[0] + 4 for s in strips), width, 3), np.uint8)
        y = 0
        for s in strips:
            canvas[y:y + s.shape[0], : s.shape[1]] = s
            y += s.shape[0] + 4
        Image.fromarray(canvas).save(args.out / f"{args.name}_examples.png")
    lines = ["# ReasonDiff: unpaired text + image", "", f"Command: `{command}`", "",
             f"{args.n} unpaired cases per position (start, middle, end) and split ({', '.join(SPLITS)}); means with "
             f"95 % bootstrap intervals over cases; then paired differences from {', '.join(references)} (bold where the interval "
             "excludes 0). Definitions: the script's docstring.", "",
             "| system | split | position | position exact | within ±1 | on path before | on path after | action before | action after | identity | prompt presence | prompt direction |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for label in per_system:
        s = summaries[label]
        for split in ("all", *SPLITS):
            for position in ("all", *POSITIONS):
                cells = [_fmt(s.get(f"{k}@{split}@{position}")) for k in KEYS]
                lines.append(f"| {label} | {split} | {position} | " + " | ".join(cells) + " |")
    for reference in references:
        lines += ["", f"## Paired differences from {reference}", "",
                  "| system | split | position | position exact | on path before | on path after | action before | "
                  "action after | identity | prompt direction |", "|---|---|---|---|---|---|---|---|---|---|"]
        for label in per_system:
            if label == reference:
                continue
            s = summaries[label]
            for split in ("all", *SPLITS):
                for position in POSITIONS:
                    cells = []
                    for k in ("position_exact", "path_before", "path_after", "action_before", "action_after",
                              "identity", "prompt_direction"):
                        d = (s.get(f"{k}@{split}@{position}") or {}).get("vs", {}).get(reference)
                        cells.append(format_difference(d["mean"], d["interval"]) if d else "—")
                    lines.append(f"| {label} | {split} | {position} | " + " | ".join(cells) + " |")
    if examples:
        lines += ["", "## Examples", "", "Four cases (" + "; ".join(
            f"{c['id']}: “{c['text']}”, the image is frame {c['frame']}" for c in cases if c["id"] in order)
            + "), each generated by "
            + ("every system in the order of the tables above" if args.show is None else
               "; ".join(label for label in per_system if label in args.show) + ", in this order")
            + "; the image's true frame is outlined.", "", f"![examples]({args.name}_examples.png)"]
    tmp = args.out / f".{args.name}.md.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(args.out / f"{args.name}.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
