"""benchmarks/jdm.py on a tiny model: a model measured by an earlier run is read back from its result (--earlier)
and paired with a model measured now; a result of other cases is refused."""

import json
from pathlib import Path

from anyframe.training.config import load_config
from anyframe.training.recipe import train

ROOT = Path(__file__).parents[1]


def test_an_earlier_result_joins_the_table_and_pairs_with_a_new_model(load_script, tmp_path, capsys):
    bench = load_script("benchmarks/jdm.py")
    cfg = load_config(ROOT / "configs" / "toy.yaml", [
        f"output_dir={tmp_path / 'run'}", "data.toy.num_clips=8", "data.toy.size=32", "data.toy.num_frames=16",
        "train.steps=1", "train.checkpoint_every=0", "train.log_every=1"])
    pipeline = train(cfg, progress=False).pipeline_dir
    out, cache = tmp_path / "results", ["--cache", str(tmp_path / "cache")]  # the second call reads the renders back
    assert bench.main(["--model", f"first={pipeline}", "--n", "1", "--out", str(out), "--name", "one", *cache]) == 0
    first = json.loads((out / "one.json").read_text())
    assert bench.main(["--model", f"second={pipeline}", "--earlier", f"first={out / 'one.json'}", "--control", "first",
                       "--n", "1", "--out", str(out), "--name", "two", *cache]) == 0
    second = json.loads((out / "two.json").read_text())
    assert second["cases"]["first"] == first["cases"]["first"]  # read back, not measured again
    # the same weights and cases: the paired differences are exactly 0
    diffs = [v["vs_control"] for v in second["summaries"]["second"].values() if "vs_control" in v]
    assert diffs and all(d == 0 for d in diffs)
    assert "first" in (out / "two.md").read_text()
    capsys.readouterr()
    assert bench.main(["--model", f"second={pipeline}", "--earlier", f"first={out / 'one.json'}", "--n", "2",
                       "--out", str(out), "--name", "three"]) == 2
    assert "--n 1" in capsys.readouterr().err and not (out / "three.json").exists()
    assert bench.main(["--model", f"second={pipeline}", "--earlier", f"nobody={out / 'one.json'}", "--n", "1",
                       "--out", str(out), "--name", "three"]) == 2
