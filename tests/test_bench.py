"""`mlpsweep bench` runs end to end and prints what the README quotes (no timing asserted)."""

import pytest

from mlpsweep.bench import train as bench


def test_bench_prints_every_row_with_its_verdict(mnist_5k):
    lines = []
    rows = bench.run(mnist_5k, rounds=1, seconds_per_round=0.01, out=lines.append)
    assert [(r["batch"], r["dtype"]) for r in rows] == [
        (10, "float32"),
        (10, "float64"),
        (100, "float32"),
        (100, "float64"),
    ]
    for row in rows:
        assert row["fused"] is (row["dtype"] == "float32")
        assert min(row["step"], row["ceiling"], row["naive"], row["layers"]) > 0
        against = "ceiling" if row["dtype"] == "float32" else "naive"
        assert row["ratio"] == row["step"] / row[against]
    assert "1 thread" in lines[0]
    table = lines[2:6]
    assert all(("met" in line) != ("MISSED" in line) for line in table)
    assert [line.split()[:2] for line in table] == [
        ["10", "float32"],
        ["10", "float64"],
        ["100", "float32"],
        ["100", "float64"],
    ]
    # The float32 step's breakdown: every stage kind, its products beside the ceiling.
    assert lines[7].startswith("where the float32 step's time goes")
    heading, *parts = (line.split() for line in lines[8:11])
    assert heading == ["batch", "step", "products", "ceiling", *bench.COLUMNS]
    assert [p[0] for p in parts] == ["10", "100"]
    for row in rows:
        parts = row["breakdown"]
        if row["dtype"] == "float64":
            assert parts is None
            continue
        assert min(parts[k] for k in ("step", "products", "batch", "loss", "ReLU")) > 0
        assert ("update" in parts) is not parts["in_gemm"]
        stages = [k for k in ("products", *bench.COLUMNS) if k in parts and k != "rest"]
        assert parts["rest"] == pytest.approx(parts["step"] - sum(parts[k] for k in stages))


@pytest.mark.slow
def test_the_train_bench_runs_under_a_second_kernel_in_the_same_command():
    import subprocess
    import sys

    others = bench.other_kernels(["Haswell", "SkylakeX"])
    if not others:
        pytest.skip("numpy's BLAS is not OpenBLAS")
    args = ["-m", "mlpsweep.bench", "train", "--rounds", "1", "--also-kernels", others[0]]
    p = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr
    headers = [line for line in p.stdout.splitlines() if line.startswith("training step")]
    assert len(headers) == 2 and f"({others[0]})" in headers[1], p.stdout
    assert p.stdout.count("where the float32 step's time goes") == 2


@pytest.mark.slow
@pytest.mark.e2e
# The bench's own counting, on three kinds of fault (a killed process, damage on disk,
# hostile input); every fault class of the bench also has a test of its own
# (test_faults, test_launchers, test_safety, test_trust, test_reliability).
@pytest.mark.parametrize(
    "fault",
    [
        "kill -9 of one worker",
        "a tampered dataset cache",
        "hostile sweep names",
        "a lone worker stopped (kill -STOP)",
    ],
)
def test_the_fault_bench_counts_zero(fault):
    from mlpsweep.bench import faults

    lines = []
    totals = faults.run(repeats=1, jobs=6, out=lines.append, only=[fault])
    assert totals == {"lost": 0, "twice": 0, "damaged": 0, "outside": 0, "hung": 0}, "\n".join(
        lines
    )
    [row] = lines[2:-1]  # (whether the fault hit while work went on is chance: 'landed')
    assert row.split()[: len(fault.split())] == fault.split(), row


@pytest.mark.slow
@pytest.mark.e2e
def test_launch_bench_prints_both_readings_and_where_the_time_went(tmp_path, monkeypatch):
    import re

    from mlpsweep.bench import launch

    monkeypatch.chdir(tmp_path)  # the bench finds run.py beside the package
    lines = []
    rows = launch.launch(n_jobs=4, rounds=1, out=lines.append, shortcuts=False)
    assert "mlpsweep launcher" in rows  # its value is a timing: any sign on 4 jobs
    text = "\n".join(lines)
    assert re.search(r"target <= 20 ms per job: (met|MISSED)", text), text
    assert "against a plain single run" in text
    went = re.search(
        r"sweep's ([\d.]+) s went: start-up and planning ([\d.]+) s, jobs ([\d.]+) s, "
        r"report ([\d.]+) s",
        text,
    )
    assert went, text
    wall, start, jobs, report = map(float, went.groups())
    # 4 one-step jobs may take under 0.05 s: the launcher's line says 0.0
    assert start > 0 and jobs >= 0 and report > 0
    assert abs(start + jobs + report - wall) < 0.02
    shares = re.search(r"per job, against the plain single run: .* = ([\d.]+) ms", text)
    parts = re.findall(r"(-?[\d.]+) ms", shares.group(0))
    strict = re.search(r"mlpsweep launcher ([\d.]+) ms per job, stock", text)
    # The shares add up to the strict figure (each rounded to 0.1 ms).
    total = sum(float(x) for i, x in enumerate(parts[:-1]) if i != 2)  # [2] is the floor
    assert abs(total - float(parts[-1])) < 0.3, shares.group(0)
    if strict:
        assert abs(float(parts[-1]) - float(strict.group(1))) < 0.15, text


@pytest.mark.slow  # over 1.4 s: kept out of the one-minute quick suite
def test_the_readme_bench_prints_openings_with_machine_and_marks_chaotic_lines(tmp_path):
    """Catches README numbers with no command behind them: `mlpsweep bench readme --from`
    prints the machine and BLAS kernel, a study's opening lines (warnings too, not the
    method note), a chaos mark beside the listing's sum/lr=0.01 contrast and nowhere
    else, and the per-config means grouped by every config column (never pooled: the
    two reductions stay apart)."""
    from test_referee import ZIPPED, write_curves

    from mlpsweep.bench import readme
    from mlpsweep.report import build_report

    study = {
        "compare": ["batch_size"],
        "metrics": ["spread_rel"],
        "contrasts": [
            {"name": "at an equal step", "where": {"grad_reduction": "mean", "lr": 0.1}},
            {"name": "the listing", "where": {"grad_reduction": "sum", "lr": 0.01}},
        ],
    }
    sweep = write_curves(tmp_path / "batch_oscillation" / "t", ZIPPED, study=study)
    build_report(sweep)
    lines = []
    readme.run(["batch_oscillation"], [sweep], out=lines.append)
    text = "\n".join(lines)
    assert lines[0].startswith("machine: ") and "BLAS " in lines[0]
    listing = [x for x in text.splitlines() if "grad_reduction=sum, lr=0.01" in x]
    equal = [x for x in text.splitlines() if "grad_reduction=mean, lr=0.1)" in x]
    assert listing and equal and "Effects are ratios" not in text
    assert text.count("[chaotic:") == len(listing)
    assert "mean per config" in text
    table = text.split("mean per config")[1]
    assert "sum" in table and "mean" in table  # one row per reduction, not pooled


def test_the_halving_bench_counts_each_step_once_and_says_met_or_missed(tiny_dataset):
    from mlpsweep.bench import halving
    from mlpsweep.core import TrainConfig
    from mlpsweep.records.halving import HalvingSpec

    configs = {
        (b, lr, s): TrainConfig(
            lr=lr, batch_size=b, seed=s, steps=90, eval_every=10, width=16, depth=1
        )  # fmt: skip
        for b in (10, 50)
        for lr in (0.01, 0.1, 1.0)
        for s in range(2)
    }
    spec = HalvingSpec(metric="test_loss", min_steps=10, eta=3, within="batch_size")
    grid = halving.Grid("tiny", configs, spec, "metric")
    full, full_steps, _ = halving.full_grid(grid, tiny_dataset)
    half, half_steps, _ = halving.halved(grid, tiny_dataset)
    assert full_steps == sum(r.steps_done for r in full.values()) == 12 * 90
    # each step trained once: the count is what the runs reached, not a rung retrained
    assert half_steps == sum(r.steps_done for r in half.values())
    finalists = [key for key, r in half.items() if r.steps_done == 90]
    assert len(finalists) == 2 * 2  # per batch size: 3 configs -> 1 -> 1, with its seeds
    for key in finalists:  # continued from checkpoints: the uninterrupted run's numbers
        assert half[key].test_loss[-1] == full[key].test_loss[-1]
    lines = []
    ok, share = halving.compare(grid, tiny_dataset, out=lines.append)
    assert share == half_steps / full_steps < 0.5
    assert "rungs [10, 30, 90]" in lines[0]
    assert [line.split()[0] for line in lines[2:4]] == ["10", "50"]
    assert lines[-1].startswith("  training steps: full grid 1,080, halving")
