"""benchmarks/reasondiff.py on a tiny model: every placement mode runs, cases pair up, the report is written."""

import json
from pathlib import Path

import numpy as np

from anyframe.training.config import load_config
from anyframe.training.recipe import train

ROOT = Path(__file__).parents[1]


def test_the_benchmark_places_the_image_by_mode_and_pairs_the_systems(load_script, tmp_path, monkeypatch):
    bench = load_script("benchmarks/reasondiff.py")
    run = tmp_path / "run"
    cfg = load_config(ROOT / "configs" / "toy.yaml", [
        f"output_dir={run}", "data.toy.num_clips=8", "data.toy.size=32", "data.toy.num_frames=16", "train.steps=1",
        "train.checkpoint_every=0", "train.log_every=1"])
    pipeline = train(cfg, progress=False).pipeline_dir
    out = tmp_path / "results"
    modes = ("frame0", "placed", "narrator", "true", "caption", "described")
    args = [a for m in modes for a in ("--system", f"{m}={pipeline}@{m}")] + ["--n", "1", "--steps", "2", "--out", str(out),
                                                                      "--name", "r", "--cache", str(tmp_path / "c")]
    assert bench.main(args) == 0
    assert len(list((tmp_path / "c").glob("*.json"))) == len(modes)  # one per system: weights, mode, steps, cases
    payload = json.loads((out / "r.json").read_text())
    cases = payload["cases"]
    assert set(cases) == set(modes) and all(len(rows) == 6 for rows in cases.values())  # 3 positions × 2 splits
    assert all(r["placed"] == 0 for r in cases["frame0"].values())
    # on a model without per-frame narratives, "placed" and "narrator" put the image at the same frame
    assert {k: r["placed"] for k, r in cases["placed"].items()} == {k: r["placed"] for k, r in cases["narrator"].items()}
    assert {k: r["placed"] for k, r in cases["described"].items()} == {k: r["placed"] for k, r in cases["narrator"].items()}
    ends = {"start": 0, "end": 15}  # the true frame of a start / end case
    assert all(r["placed"] == ends[r["position"]] for r in cases["true"].values() if r["position"] in ends)
    assert "frame0" in payload["summaries"]["placed"]["position_exact@all@all"]["vs"]
    report = (out / "r.md").read_text()
    assert "| placed | all | all |" in report and "Paired differences from frame0" in report

    # a second call reads every system back from the cache (nothing is loaded) and writes the same scores
    monkeypatch.setattr(bench.System, "load", None)  # would fail if a system were measured again
    assert bench.main([*args[:-4], "--name", "again", "--cache", str(tmp_path / "c"), "--reference", "frame0",
                       "--reference", "true"]) == 0
    again = json.loads((out / "again.json").read_text())
    assert again["cases"] == cases
    assert set(again["summaries"]["placed"]["position_exact@all@all"]["vs"]) == {"frame0", "true"}
    assert "Paired differences from true" in (out / "again.md").read_text()
    assert (out / "again_examples.png").read_bytes() == (out / "r_examples.png").read_bytes()
    # --show: the examples figure holds only the systems named (one strip per shown case and system)
    from PIL import Image

    assert bench.main([*args[:-4], "--name", "two", "--cache", str(tmp_path / "c"), "--show", "frame0",
                       "--show", "true"]) == 0
    rows = {name: Image.open(out / f"{name}_examples.png").height for name in ("r", "two")}
    assert rows["two"] * len(modes) == rows["r"] * 2
    assert "frame0; true, in this order" in (out / "two.md").read_text()
    # a different --steps is a different measurement
    assert bench.System("x=" + str(pipeline) + "@frame0", 3).cache_file(tmp_path / "c", 1, 1) != \
        bench.System("x=" + str(pipeline) + "@frame0", 2).cache_file(tmp_path / "c", 1, 1)


def test_action_scores_the_text_objects_windows_around_the_anchor(load_script):
    bench = load_script("benchmarks/reasondiff.py")
    middles = [c for c in bench.unpaired_cases(4, 8_800_000) if c["position"] == "middle"]
    rows = [bench.score(bench.render(c["scene"]).frames, c["frame"], c) for c in middles]
    # the truth's own render: right on every side the text's object has windows on
    assert all(r["landed"] == c["frame"] and r["action_before"] in (1.0, None) and r["action_after"] in (1.0, None)
               and r["path_before"] in (1.0, None) and r["path_after"] in (1.0, None) for r, c in zip(rows, middles))
    case = next(c for r, c in zip(rows, middles) if r["action_before"] is not None and r["action_after"] is not None
                and "slowly" not in c["text"] and "bounces" not in c["text"])  # one that moves well past its radius
    truth, frames = bench.truth_of(case["scene"]), bench.render(case["scene"]).frames
    # played backwards, the text's object moves the wrong way on both sides of the anchor (frame 8 of 16 stays put)
    backwards = bench.score(frames[::-1].copy(), case["frame"], case)
    assert backwards["action_before"] == 0.0 and backwards["action_after"] == 0.0
    assert backwards["path_before"] < 0.5 and backwards["path_after"] < 0.5  # off its path but near the middle
    # the anchor image on every frame: the object stands still at its frame-8 place
    frozen = bench.score(np.repeat(frames[case["frame"]][None], len(frames), 0), case["frame"], case)
    assert frozen["path_before"] < 0.5
    # the windows counted are the text's object's only
    reading = bench.read_clip(frames)
    others = bench.action(truth, reading, bench.match_objects(truth, reading), case["frame"], obj=None)
    assert others == (1.0, 1.0) and len(case["scene"].objects) >= 1


def test_each_mode_gives_the_model_its_own_prompt(load_script):
    """frame0 / placed: the text; caption: the scene's true caption (oracle); described: the caption of the
    narrator's solved scene (no oracle: what the narrator read from the image and the text)."""
    bench = load_script("benchmarks/reasondiff.py")
    from anyframe.narrators.world import WorldNarrator
    from anyframe.world.captions import caption

    case = next(c for c in bench.unpaired_cases(2, 8_800_000) if c["position"] == "end")
    seen = {}

    class Recorder:  # the pipeline's call; a narrator given places the image (and with narrator_prompt, prompts)
        def __call__(self, prompt, keyframes, narrator=None, narrator_prompt=False, **kw):
            index = keyframes[0].frame_index
            if narrator is not None:
                narrative = narrator.narrate(case["image"], prompt, case["scene"].frames)
                index, prompt = narrative.position, narrative.caption if narrator_prompt else prompt
            seen["prompt"], seen["index"] = prompt, index
            raise StopIteration

    solved = WorldNarrator().solve(case["image"], case["text"], case["scene"].frames)
    want = {"frame0": (case["text"], 0), "placed": (case["text"], solved.narrative.position),
            "narrator": (case["text"], solved.narrative.position),
            "caption": (caption(case["scene"]), solved.narrative.position),
            "described": (caption(solved.scene), solved.narrative.position)}
    for mode, expected in want.items():
        system = bench.System(f"x={ROOT / 'checkpoints' / 'anyframe-world-s'}@{mode}")
        system.pipe, system.narrator = Recorder(), WorldNarrator()
        try:
            system.generate(case, 0)
        except StopIteration:
            pass
        assert (seen["prompt"], seen["index"]) == expected, mode
    # the narrator's description names the text's object and its motion, and is not the oracle's caption
    assert want["described"][0] != want["caption"][0] and want["described"][0] != case["text"]
