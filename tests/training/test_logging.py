"""metrics.jsonl across resumes: a run killed after its last checkpoint must not leave a doubled curve."""

import json

from anyframe.training.logging import MetricsLogger, read_metrics


def _write(path, steps):
    path.write_text("".join(json.dumps({"step": s, "loss": 1.0 / s}) + "\n" for s in steps))


def test_resume_drops_records_past_the_checkpoint(tmp_path):
    _write(tmp_path / "metrics.jsonl", range(1, 11))  # logged to step 10, checkpoint at 6, then killed
    logger = MetricsLogger(tmp_path, start=6, progress=False)
    logger.log({"step": 7, "loss": 0.5})
    logger.close()
    assert [m["step"] for m in read_metrics(tmp_path)] == [1, 2, 3, 4, 5, 6, 7]


def test_a_fresh_run_in_the_same_folder_starts_a_new_curve_and_other_ranks_touch_nothing(tmp_path):
    _write(tmp_path / "metrics.jsonl", range(1, 5))
    MetricsLogger(tmp_path, enabled=False, start=0, progress=False).close()
    assert len(read_metrics(tmp_path)) == 4  # not the main process: the file is not its to change
    MetricsLogger(tmp_path, start=0, progress=False).close()
    assert read_metrics(tmp_path) == []


def test_logged_terms_are_the_mean_over_the_ranks_that_have_them():
    from anyframe.training.recipe import merge_ranks

    ranks = [{"loss": 1.0, "loss/ti2v": 0.5, "jdm/mask": float("nan")},
             {"loss": 3.0, "loss/t2v": 0.25, "jdm/mask": 2.0}]
    # a task only one rank's batch held keeps that rank's value; a diagnostic undefined on a rank is left out
    assert merge_ranks(ranks) == {"loss": 2.0, "loss/ti2v": 0.5, "loss/t2v": 0.25, "jdm/mask": 2.0}
    assert merge_ranks([{"loss": 0.1234567}]) == {"loss": 0.1234567}  # one process: the values as they are
    assert merge_ranks([{"x": float("inf")}, {}]) == {}
