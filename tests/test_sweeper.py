import pytest
from helpers import REPO
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from hydra_plugins.mlpsweep_plugins.sweeper import zipped_product

PARSER = OverridesParser.create()


def jobs(args, zip_groups=None):
    return zipped_product(PARSER.parse_overrides(args), zip_groups)


def test_plain_product_like_the_basic_sweeper():
    assert jobs(["a=1,2", "b=x,y", "c=5"]) == [
        ["a=1", "b=x", "c=5"],
        ["a=1", "b=y", "c=5"],
        ["a=2", "b=x", "c=5"],
        ["a=2", "b=y", "c=5"],
    ]


def test_zip_pairs_values_and_crosses_the_rest():
    out = jobs(
        ["batch_size=10,100,1000", "lr=0.01,0.1,1.0", "seed=range(2)"], [["batch_size", "lr"]]
    )
    assert out == [
        ["batch_size=10", "lr=0.01", "seed=0"],
        ["batch_size=10", "lr=0.01", "seed=1"],
        ["batch_size=100", "lr=0.1", "seed=0"],
        ["batch_size=100", "lr=0.1", "seed=1"],
        ["batch_size=1000", "lr=1.0", "seed=0"],
        ["batch_size=1000", "lr=1.0", "seed=1"],
    ]


def test_zip_of_three_keys_with_repeated_values():
    out = jobs(["g=sum,sum,mean", "b=10,100,10", "lr=0.01,0.01,0.1"], [["g", "b", "lr"]])
    assert out == [
        ["g=sum", "b=10", "lr=0.01"],
        ["g=sum", "b=100", "lr=0.01"],
        ["g=mean", "b=10", "lr=0.1"],
    ]


@pytest.mark.parametrize(
    "args, groups, message",
    [
        (["a=1,2", "b=1,2,3"], [["a", "b"]], "differ in length"),
        (["a=1,2"], [["a", "b"]], "b not swept"),
    ],
)
def test_zip_errors(args, groups, message):
    with pytest.raises(HydraException, match=message):
        jobs(args, groups)


@pytest.mark.parametrize("path", sorted((REPO / "sweeps").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_sweep_file_is_headed_and_expands(path):
    import yaml

    text = path.read_text()
    lines = text.splitlines()
    assert lines[0] == "# @package _global_"
    loaded = yaml.safe_load(text)
    sweeper = loaded["hydra"]["sweeper"]
    adaptive = "n_trials" in sweeper  # an Optuna study: it chooses the sweeper itself
    if adaptive:
        assert {"override /hydra/sweeper": "optuna"} in loaded["defaults"]
    assert lines[1] == f"# python run.py -m +sweep={path.stem}"
    header = "\n".join(line for line in lines if line.startswith("#"))
    assert "?" in header  # the question it answers
    if adaptive:
        assert sweeper["sampler"]["seed"] is not None  # the same trials on every machine
        return
    params = [f"{k}={v}" for k, v in sweeper["params"].items()]
    assert len(jobs(params, sweeper.get("zip"))) >= 3
