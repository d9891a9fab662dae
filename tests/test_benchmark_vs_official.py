"""``benchmarks.mixers --official-dir``: the comparison harness, driven by stand-in "official" modules.

The repository holds no official code, so these tests write small stand-ins into a temporary
directory under the file name the harness expects.  Timings are not checked (they are measured,
not asserted), only what the harness does with them.
"""
from __future__ import annotations

import json
import math

import pytest

from benchmarks import mixers as bench

SAME_AS_OURS = """
import torch.nn as nn

class Pooling(nn.Module):
    def __init__(self, pool_size=3):
        super().__init__()
        self.pool = nn.AvgPool2d(pool_size, stride=1, padding=pool_size // 2, count_include_pad=False)

    def forward(self, x):
        return self.pool(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1) - x
"""
# Counts the zero padding at the borders: a different function from ours.
DIFFERENT = SAME_AS_OURS.replace("count_include_pad=False", "count_include_pad=True")


def _run(tmp_path, official_source: str | None, *extra: str) -> tuple[int, dict]:
    official = tmp_path / "official"
    official.mkdir(exist_ok=True)
    if official_source is not None:
        (official / "metaformer_baselines.py").write_text(official_source)
    out = tmp_path / "vs.json"
    code = bench.main(["--official-dir", str(official), "--device", "cpu", "--threads", "1",
                       "--repeats", "3", "--warmup", "1", "--min-sample-ms", "0", "--out", str(out), *extra])
    return code, json.loads(out.read_text())


def _rows(report: dict) -> dict:
    return {(r["mixer"], r.get("dim"), r.get("size")): r for r in report["results"]}


@pytest.mark.parametrize("clock", ["wall", "thread"])
def test_ratios_and_geometric_mean(tmp_path, clock):
    code, report = _run(tmp_path, SAME_AS_OURS, "--mixers", "pooling,dma", "--shapes", "8x5,4x3", "--clock", clock)
    assert code == 0 and report["settings"]["clock"] == clock
    rows = _rows(report)
    ratios = []
    for size in (5, 3):
        entry = rows[("pooling", 8 if size == 5 else 4, size)]
        assert entry["status"] == "ok" and entry["max_rel_diff"] < 1e-6
        for mode in ("forward", "forward_backward"):
            t = entry[mode]
            assert math.isclose(t["ratio"], t["official_ms"] / t["ours_ms"])
            ratios.append(t["ratio"])
    assert rows[("dma", None, None)]["status"] == "skipped"  # no official code exists
    summary = report["summary"]
    assert summary["timings"] == 4
    assert math.isclose(summary["geomean"], math.exp(sum(map(math.log, ratios)) / 4))
    assert summary["lowest"]["ratio"] == min(ratios)


def test_a_different_function_is_reported_and_not_timed(tmp_path):
    code, report = _run(tmp_path, DIFFERENT, "--mixers", "pooling", "--shapes", "8x5")
    entry = _rows(report)[("pooling", 8, 5)]
    assert code == 1
    assert entry["status"] == "mismatch" and "forward" not in entry
    assert report["summary"]["timings"] == 0


def test_missing_official_file_skips_the_mixer(tmp_path):
    code, report = _run(tmp_path, None, "--mixers", "pooling", "--shapes", "8x5")
    entry = _rows(report)[("pooling", 8, 5)]
    assert code == 0
    assert entry["status"] == "skipped" and "metaformer_baselines.py" in entry["note"]


def test_update_replaces_only_the_remeasured_configurations(tmp_path):
    _, first = _run(tmp_path, SAME_AS_OURS, "--mixers", "pooling", "--shapes", "8x5,4x3")
    _, second = _run(tmp_path, SAME_AS_OURS, "--mixers", "pooling", "--shapes", "4x3", "--update")
    before, after = _rows(first), _rows(second)
    assert list(after) == list(before)  # same entries, same order
    assert after[("pooling", 8, 5)] == before[("pooling", 8, 5)]  # kept as measured
    assert second["summary"]["timings"] == 4


def test_thread_clock_needs_one_thread(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--official-dir", str(tmp_path), "--clock", "thread", "--threads", "2"])
    assert exit_info.value.code == 2
