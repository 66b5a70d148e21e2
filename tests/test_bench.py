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


@pytest.mark.slow
@pytest.mark.e2e
def test_fault_bench_counts_zero_for_every_fault_class():
    from mlpsweep.bench import faults

    lines = []
    totals = faults.run(repeats=1, jobs=6, out=lines.append)
    assert totals == {"lost": 0, "twice": 0, "damaged": 0, "outside": 0}, "\n".join(lines)
    assert [line.split()[0] for line in lines[2:-1]] == [
        "kill",
        "kill",
        "SIGTERM",
        "two",
        "two",
        "a",
        "hostile",
    ]
