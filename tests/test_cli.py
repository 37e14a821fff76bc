"""The command line: help, listings, report of a saved checkpoint, errors, the demo end to end."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import sparsetorch as st
from sparsetorch.cli import app

runner = CliRunner()


def invoke(*args):
    result = runner.invoke(app, list(args), catch_exceptions=False, terminal_width=200)
    return result


def test_help_lists_commands_and_every_flag_has_help():
    out = subprocess.run(
        [sys.executable, "-m", "sparsetorch.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in ("ls", "report", "papers", "models", "demo"):
        assert command in out
    for command in (["ls"], ["report"], ["demo"], ["papers", "list"], ["models", "train"]):
        text = invoke(*command, "--help").output
        assert "Usage" in text
        options = [line for line in text.splitlines() if line.strip().startswith("│ --")]
        assert all(len(line.split()) > 3 for line in options), options  # a flag and its help text


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("methods", "magnitude"),
        ("models", "lenet-300-100"),
        ("datasets", "fashion-mnist"),
        ("papers", "sdr-dendrites"),
    ],
)
def test_ls(kind, expected):
    result = invoke("ls", kind)
    assert result.exit_code == 0 and expected in result.output


def test_ls_rejects_unknown_kind():
    assert runner.invoke(app, ["ls", "gadgets"]).exit_code != 0


def test_papers_list_counts_every_status():
    from sparsetorch.papers import list_papers

    result = invoke("papers", "list")
    papers = list_papers()
    implemented = sum(p.status == "implemented" for p in papers)
    planned = len(papers) - implemented
    assert result.exit_code == 0 and f"{planned} planned, {implemented} implemented" in result.output
    assert "entry points" in result.output


def test_papers_list_by_axis_and_a_bad_axis():
    result = invoke("papers", "list", "--axis", "foundations")
    assert result.exit_code == 0 and "sdr-dendrites" in result.output and "g2gnet" not in result.output
    bad = invoke("papers", "list", "--axis", "space")
    assert bad.exit_code == 2 and "unknown axis 'space'" in bad.output and "foundations" in bad.output


def test_ls_methods_shows_every_kind_with_its_axis():
    out = invoke("ls", "methods").output
    for name, kind in [
        ("magnitude", "pruning"),
        ("rigl", "training"),
        ("random-search", "search"),
        ("kwta", "activation"),
        ("top-k", "gate"),
        ("sparse-model-soups", "driver"),
        ("sparse-ift", "transform"),
    ]:
        assert any(name in line and kind in line for line in out.splitlines()), (name, kind)
    assert "routes" in out and "activations" in out


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("rigl", ["rigl"]),
        ("random-search-nas", ["random-search"]),
        ("sparse-model-soups", ["sparse-model-soups"]),
        ("sparse-ift", ["sparse-ift"]),
        ("graph-of-tokens-moe", ["similarity-aware", "attention-aware"]),
    ],
)
def test_ls_methods_by_paper(key, expected):
    result = invoke("ls", "methods", "--paper", key)
    assert result.exit_code == 0
    names = [line.split("│")[1].strip() for line in result.output.splitlines() if line.startswith("│")]
    assert sorted(names) == sorted(expected)


def test_ls_methods_bad_paper_and_paper_on_other_kinds():
    result = invoke("ls", "methods", "--paper", "rigll")
    assert result.exit_code == 2 and "did you mean 'rigl'" in result.output
    assert invoke("ls", "models", "--paper", "rigl").exit_code == 2


def test_report_of_a_saved_checkpoint(tmp_path):
    model = st.create_model("lenet-300-100", seed=0)
    st.prune(model, "magnitude", pattern="2:4")
    path = st.save(model, tmp_path / "lenet.safetensors")
    table = invoke("report", str(path))
    assert table.exit_code == 0 and "fc1.weight" in table.output and "2:4" in table.output
    data = json.loads(invoke("report", str(path), "--json").output)
    assert data["sparsity"] == 0.5
    assert {r["fqn"] for r in data["layers"]} == {"fc1.weight", "fc2.weight"}


def test_report_of_a_corrupt_checkpoint_fails_cleanly(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(b"not a checkpoint")
    result = runner.invoke(app, ["report", str(path)])
    assert result.exit_code == 2 and "corrupt" in result.output


@pytest.mark.data
def test_demo_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSETORCH_CACHE", str(tmp_path))
    result = invoke("demo", "--sparsities", "0.5,0.9")
    assert result.exit_code == 0, result.output
    assert "LeNet-300-100" in result.output and "90.0%" in result.output
    assert list((tmp_path / "models").glob("lenet-300-100-*.safetensors"))  # cached for the next run


@pytest.fixture
def lenet_checkpoint(tmp_path):
    return st.save(st.create_model("lenet-300-100", seed=0), tmp_path / "lenet.safetensors")


@pytest.mark.data
def test_prune_writes_checkpoint_and_report(tmp_path, lenet_checkpoint):
    out = tmp_path / "out"
    result = invoke(
        "prune",
        "--model",
        str(lenet_checkpoint),
        "--method",
        "wanda",
        "--pattern",
        "2:4",
        "--calibration",
        "fashion-mnist",
        "--samples",
        "16",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    data = json.loads((out / "report.json").read_text())
    assert data["method"] == "wanda" and data["sparsity"] == 0.5 and data["pattern"] == "2:4"
    assert all(r["error"] >= 0 for r in data["pruning"])
    model = st.load(out / "model.safetensors")
    assert set(st.get_masks(model)) == {"fc1.weight", "fc2.weight"}


def test_prune_bad_input_exits_cleanly(tmp_path, lenet_checkpoint):
    out = tmp_path / "out"
    result = runner.invoke(
        app,
        [
            "prune",
            "--model",
            str(lenet_checkpoint),
            "--method",
            "wanda",
            "--sparsity",
            "0.5",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 2 and "needs calibration" in result.output
    result = runner.invoke(app, ["prune", "--model", "lenet-3OO-100", "--out", str(out)])
    assert result.exit_code == 2 and "did you mean" in result.output
    assert not out.exists()


def test_papers_run_refuses_planned_papers_and_bad_scales():
    result = runner.invoke(app, ["papers", "run", "routing-transformer", "--scale", "tiny"])
    assert result.exit_code == 2 and "no reproduction yet" in result.output
    result = runner.invoke(app, ["papers", "run", "dsnot", "--scale", "huge"])
    assert result.exit_code == 2
    result = runner.invoke(app, ["papers", "run", "dsnott"])
    assert result.exit_code == 2 and "did you mean" in result.output


# --- errors: one line on stderr and exit 2 for ours, a traceback and a bug report for the rest ---------


def one_line_error(result, *needles: str) -> str:
    """Assert `result` failed with our one-line error (exit 2) and return that line."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_prune_checks_out_before_pruning(tmp_path, lenet_checkpoint, monkeypatch):
    import sparsetorch

    def never(*args, **kwargs):
        raise AssertionError("pruned although --out cannot be written")

    monkeypatch.setattr(sparsetorch, "prune", never)
    afile = tmp_path / "afile"
    afile.write_text("x")
    base = ["prune", "--model", str(lenet_checkpoint), "--method", "magnitude", "--sparsity", "0.5"]
    one_line_error(runner.invoke(app, [*base, "--out", str(afile)]), "is a file, not a folder")
    one_line_error(runner.invoke(app, [*base, "--out", str(afile / "sub")]), "is a file, not a folder")
    (tmp_path / "o" / "model.safetensors").mkdir(parents=True)
    one_line_error(runner.invoke(app, [*base, "--out", str(tmp_path / "o")]), "is a folder")
    assert afile.read_text() == "x"


def test_bench_run_refuses_a_file_as_dir_and_zero_workers(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    one_line_error(runner.invoke(app, ["bench", "run", "--dir", str(afile)]), "is a file")
    result = runner.invoke(app, ["bench", "run", "--workers", "0", "--dir", str(tmp_path / "d")])
    one_line_error(result, "--workers must be at least 1, got 0")
    assert afile.read_text() == "x" and not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (
            b"experiments:\n  - task: kernel-speed\n    methods: [dense]\n    budget: [1, 2]\n",
            "'budget' must be",
        ),
        (
            b"experiments:\n  - task: fmnist-mlp\n    methods: [gmp]\n    sparsities: [0.5]\n    params: [1]\n",
            "'params' must be",
        ),
        (b"include: 5\nexperiments: []\n", "'include' must be"),
        (b"name: caf\xe9\nexperiments: []\n", "not UTF-8"),
        (
            b"experiments:\n  - task: fmnist-mlp\n    methods: [{name: rigl, params: {update_evry: 5}}]\n"
            b"    sparsities: [0.5]\n",
            "did you mean 'update_every'",
        ),
    ],
    ids=["budget-list", "params-list", "include-int", "non-utf8", "param-typo"],
)
def test_bench_run_bad_suites(tmp_path, body, needle):
    suite = tmp_path / "s.yaml"
    suite.write_bytes(body)
    result = runner.invoke(app, ["bench", "run", "--suite", str(suite), "--dir", str(tmp_path / "d")])
    assert str(suite) in one_line_error(result, needle)
    assert not (tmp_path / "d").exists()


def test_unknown_names_in_models_train_and_papers_list():
    one_line_error(runner.invoke(app, ["models", "train", "nosuch"]), "nosuch")
    one_line_error(runner.invoke(app, ["papers", "list", "--axis", "nosuch"]), "unknown axis 'nosuch'")


def _foreign(directory):
    import sqlite3

    directory.mkdir()
    db = sqlite3.connect(directory / "bench.sqlite")
    db.execute("CREATE TABLE runs (x INTEGER)")
    db.commit()
    db.close()


def _corrupt_metrics(directory):
    import sqlite3

    from sparsetorch.bench import RunSpec, Store

    with Store(directory) as store:
        row = RunSpec("kernel-speed", "dense", 0.0, "unstructured", 0).row()
        store.add([row])
        store.claim(row["config_hash"], "me")
        store.complete(row["config_hash"], "me", {"speedup": 1.0}, {})
    db = sqlite3.connect(directory / "bench.sqlite")
    db.execute("UPDATE runs SET metrics = '{bad'")
    db.commit()
    db.close()


def _empty(directory):
    directory.mkdir()
    (directory / "bench.sqlite").write_bytes(b"")


@pytest.mark.parametrize("command", ["export", "report"])
@pytest.mark.parametrize(
    ("make", "needle"),
    [
        (_foreign, "not a sparsetorch bench store"),
        (_corrupt_metrics, "corrupt metrics JSON"),
        (_empty, "not a"),
    ],
    ids=["foreign", "corrupt-metrics", "zero-bytes"],
)
def test_bench_export_and_report_on_stores_not_ours(tmp_path, command, make, needle):
    directory = tmp_path / "d"
    make(directory)
    before = (directory / "bench.sqlite").read_bytes()
    one_line_error(runner.invoke(app, ["bench", command, str(directory)]), needle)
    assert (directory / "bench.sqlite").read_bytes() == before  # read-only: nothing written into it
    assert not (directory / "report.html").exists()


def test_report_of_a_checkpoint_with_a_bad_header(tmp_path, lenet_checkpoint):
    import struct

    raw = lenet_checkpoint.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + n])
    for key, value in [("model_config", '{"nosuch": 1}'), ("model_config", "[1]"), ("patterns", "{bad")]:
        bad = dict(header, __metadata__={**header["__metadata__"], key: value})
        blob = json.dumps(bad).encode()
        path = tmp_path / "bad.safetensors"
        path.write_bytes(struct.pack("<Q", len(blob)) + blob + raw[8 + n :])
        one_line_error(runner.invoke(app, ["report", str(path)]), "bad.safetensors")


def test_an_unexpected_exception_is_a_bug_with_its_traceback(monkeypatch, lenet_checkpoint):
    import sparsetorch
    from sparsetorch.cli import BUG

    def broken(model):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(sparsetorch, "report", broken)
    result = runner.invoke(app, ["report", str(lenet_checkpoint)])
    assert result.exit_code == 1
    assert "Traceback (most recent call last)" in result.stderr and "RuntimeError: kaboom" in result.stderr
    assert result.stderr.rstrip().splitlines()[-1] == BUG


def test_errors_reach_stderr_in_a_real_process(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "sparsetorch.cli", "bench", "run", "--workers", "0", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2 and out.stderr == "error: --workers must be at least 1, got 0\n"


def test_errors_of_upper_layers_are_ours_too(monkeypatch):
    from sparsetorch.models import pretrained

    def corrupt(name):
        raise pretrained.CorruptCacheError(f"cached {name} is corrupt; delete it to retrain")

    monkeypatch.setattr(pretrained, "pretrained", corrupt)
    one_line_error(
        runner.invoke(app, ["models", "train", "lenet-300-100"]), "cached lenet-300-100 is corrupt"
    )
