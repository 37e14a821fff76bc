"""The `sparsetorch` command line: thin, every command calls the public API.

Errors: every command runs through `_reported`, so our documented errors (`errors.USER_ERRORS`)
print as one line, `error: <message>`, on standard error with exit status 2; any other exception
is a bug, printed with its traceback and a request to report it (exit status 1).
"""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.console import Console
from rich.table import Table

from sparsetorch.errors import USER_ERRORS, SparsetorchError, one_line
from sparsetorch.registry import Axis

BUG = "this is a bug in sparsetorch; please report it with the traceback above"


def _reported(command: Callable[..., Any]) -> Callable[..., Any]:
    """`command`, with our errors as one line and exit 2, and anything else reported as a bug."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise  # typer's own exits and usage errors
        except Exception as err:
            if isinstance(err, USER_ERRORS):
                typer.echo(f"error: {one_line(err)}", err=True)
                raise typer.Exit(2) from None
            traceback.print_exc()
            typer.echo(BUG, err=True)
            raise typer.Exit(1) from None

    return run


class _Typer(typer.Typer):
    """A Typer app whose every command (and its sub-apps', built with this class) is `_reported`."""

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        register = super().command(*args, **kwargs)
        return lambda fn: register(_reported(fn))


app = _Typer(
    help="sparsetorch: sparse neural computation for PyTorch — prune, report, list methods and papers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
papers_app = _Typer(help="The seed papers: list them, see their status.", no_args_is_help=True)
models_app = _Typer(help="Reference models: train and cache them.", no_args_is_help=True)
app.add_typer(papers_app, name="papers")
app.add_typer(models_app, name="models")
bench_app = _Typer(
    help="The bench: run suites of methods x tasks into a resumable store, report, export.",
    no_args_is_help=True,
)
app.add_typer(bench_app, name="bench")
# Pipes and CI logs get a wide console so FQNs stay whole; terminals keep their own width.
console = Console(width=None if sys.stdout.isatty() else 140)


class Kind(str, Enum):
    methods = "methods"
    models = "models"
    datasets = "datasets"
    papers = "papers"


def _names_table(title: str, rows: list[tuple[str, ...]], columns: tuple[str, ...]) -> Table:
    table = Table(title=title, header_style="bold")
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    return table


def _methods_table(pattern: str, paper: str | None) -> Table:
    from sparsetorch.papers import entry_points

    rows = [(e.name, e.kind, e.axis.value, e.paper or "-") for e in entry_points(pattern, paper=paper)]
    return _names_table("methods", rows, ("name", "kind", "axis", "paper"))


@app.command("ls")
def ls(
    kind: Annotated[Kind, typer.Argument(help="What to list.")],
    pattern: Annotated[str, typer.Option("--pattern", "-p", help="Glob on names, e.g. 'rig*'.")] = "*",
    paper: Annotated[
        str | None, typer.Option(help="Methods only: the entry points of this paper key, e.g. rigl.")
    ] = None,
) -> None:
    """List registered methods (every kind: pruning, training, search, activation, gate, driver,
    transform), models, datasets or papers."""
    if paper is not None and kind is not Kind.methods:
        raise SparsetorchError("--paper applies to `ls methods` only")
    if kind is Kind.methods:
        console.print(_methods_table(pattern, paper))
    elif kind is Kind.models:
        from sparsetorch.models import MODELS

        rows = [(name, spec.summary) for name, spec in MODELS.items() if name in MODELS.list(pattern)]
        console.print(_names_table("models", rows, ("name", "description")))
    elif kind is Kind.datasets:
        from sparsetorch.data import DATASETS

        rows = [(n, d.description, d.source) for n, d in DATASETS.items() if n in DATASETS.list(pattern)]
        console.print(_names_table("datasets", rows, ("name", "description", "how to obtain")))
    else:
        papers_list(pattern=pattern, axis=None)


_RESULTS_HELP = (
    "The stored results folder (default: $SPARSETORCH_RESULTS, else results/papers of this checkout)."
)


@papers_app.command("list")
def papers_list(
    pattern: Annotated[str, typer.Option("--pattern", "-p", help="Glob on paper keys.")] = "*",
    axis: Annotated[
        str | None,
        typer.Option(help=f"Only papers of this axis ({', '.join(a.value for a in Axis)})."),
    ] = None,
    results: Annotated[Path | None, typer.Option("--results", help=_RESULTS_HELP)] = None,
) -> None:
    """The table of seed papers with each one's status, stored verdict and entry points (what to call).

    Nothing is re-run: an implemented paper with a stored result shows `reproduced` (the code it
    measured is unchanged) or `stale` (the code changed since), with the stored verdict.
    """
    from sparsetorch.papers import list_papers, paper_statuses, papers_table, results_dir

    try:
        papers = list_papers(pattern, axis=axis)
    except ValueError:
        raise SparsetorchError(
            f"unknown axis {axis!r}: use one of {', '.join(a.value for a in Axis)}"
        ) from None
    statuses = paper_statuses(papers, folder=results_dir(results))
    console.print(papers_table(papers, statuses=statuses))
    counts = {s: sum(p.status == s for p in papers) for s in ("planned", "implemented")}
    counts |= {s: sum(st.status == s for st in statuses.values()) for s in ("reproduced", "stale")}
    console.print(", ".join(f"{n} {s}" for s, n in counts.items()))


@papers_app.command("run")
def papers_run(
    keys: Annotated[list[str] | None, typer.Argument(help="Paper keys, e.g. dsnot rigl.")] = None,
    all_papers: Annotated[bool, typer.Option("--all", help="Every implemented paper.")] = False,
    scale: Annotated[str, typer.Option(help="tiny (seconds), small (minutes) or full.")] = "small",
    seeds: Annotated[
        int | None, typer.Option(help="Seeds per paper, 0..N-1 (default: 1 at tiny, 3 at small and full).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Runs at a time (each its own process).")] = 1,
    ray: Annotated[
        str | None, typer.Option(help="Run on Ray: 'local' (start one here) or HOST:PORT of a cluster.")
    ] = None,
    bench_dir: Annotated[
        Path | None,
        typer.Option(
            "--dir", help="Bench directory holding the runs (default: sparsetorch-bench/papers-SCALE)."
        ),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the result(s) as JSON here.")
    ] = None,
    store: Annotated[
        bool, typer.Option("--store/--no-store", help="Store each result as KEY.json in the results folder.")
    ] = False,
    results: Annotated[Path | None, typer.Option("--results", help=_RESULTS_HELP)] = None,
) -> None:
    """Run papers' reproductions on the bench, one process per paper and seed, and print each verdict.

    Every seed's run is kept in the bench directory, so an interrupted sweep resumes where it
    stopped (kill it and run the same command again) and a rerun on unchanged code repeats nothing.
    The verdict aggregates the seeds: a claim check passes when the mean paired margin ± 2 standard
    errors clears 0. Storing is explicit (`--store`), so a quick tiny run never replaces a stored
    small result by accident; a paper is stored only when all its seeds succeeded.
    """
    from sparsetorch.papers import check_scale, get_paper, list_papers, results_dir, store_result
    from sparsetorch.papers.render import papers_html
    from sparsetorch.papers.results import PaperStatus
    from sparsetorch.papers.sweep import DEFAULT_SEEDS, run_papers

    check_scale(scale)
    if all_papers == bool(keys):
        raise SparsetorchError("name paper keys or pass --all (not both)")
    if all_papers:
        papers = [p for p in list_papers() if p.status == "implemented"]
    else:
        papers = [get_paper(key) for key in keys or ()]  # every key checked before anything runs
    for paper in papers:
        if paper.reproduce is None:
            raise SparsetorchError(f"paper {paper.key!r} has no reproduction yet (status: planned)")
    n_seeds = DEFAULT_SEEDS[scale] if seeds is None else seeds
    if n_seeds < 1 or workers < 1:
        raise SparsetorchError(f"--seeds and --workers must be at least 1, got {n_seeds} and {workers}")
    folder = results_dir(results)
    if store and folder is None:
        raise SparsetorchError(
            "--store needs a results folder: pass --results DIR or set SPARSETORCH_RESULTS"
        )
    directory = bench_dir or Path("sparsetorch-bench") / f"papers-{scale}"
    console.print(f"{len(papers)} paper(s) × {n_seeds} seed(s) at scale {scale} -> {directory}")
    out = run_papers(papers, scale=scale, seeds=range(n_seeds), directory=directory, workers=workers, ray=ray)
    done = {}
    for paper in papers:
        stored = out.stored.get(paper.key)
        console.print(f"[bold]{paper.key}[/bold] — {paper.claim}")
        if stored is None:
            console.print(f"  no result: {out.missing[paper.key]}", highlight=False)
            continue
        console.print(stored.result.render(), highlight=False)
        if store:
            console.print(f"stored: {store_result(stored, folder=folder)}", highlight=False)
        done[paper.key] = stored.to_dict()
    sweep = out.sweep
    console.print(
        f"{sweep.completed} run(s) completed, {sweep.failed} failed, {sweep.skipped} already done, "
        f"in {sweep.seconds:.1f} s"
    )
    page = directory / "papers.html"
    page.write_text(papers_html(statuses={k: PaperStatus("reproduced", v) for k, v in out.stored.items()}))
    console.print(f"verdicts: {page}", highlight=False)
    if json_out:
        json_out.write_text(json.dumps(done, indent=2))
    if out.missing:
        raise SparsetorchError(f"{len(out.missing)} paper(s) have no result: {', '.join(out.missing)}")


@papers_app.command("report")
def papers_report(
    out: Annotated[
        Path | None,
        typer.Option("--out", help="The markdown to write (default: docs/papers.md of this checkout)."),
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="Also write the verdicts as an HTML page here.")
    ] = None,
    results: Annotated[Path | None, typer.Option("--results", help=_RESULTS_HELP)] = None,
) -> None:
    """Render the stored verdicts into docs/papers.md (overview and one section per paper) and HTML."""
    from sparsetorch.papers import list_papers, paper_statuses, results_dir
    from sparsetorch.papers.render import docs_path, papers_html, papers_markdown

    statuses = paper_statuses(list_papers(), folder=results_dir(results))
    target = out or docs_path()
    if target is None:
        raise SparsetorchError("no checkout to write docs/papers.md into: pass --out FILE")
    target.write_text(papers_markdown(statuses=statuses), encoding="utf-8")
    console.print(f"wrote {target}")
    if html:
        html.write_text(papers_html(statuses=statuses), encoding="utf-8")
        console.print(f"wrote {html}")


@app.command("report")
def report_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="A sparsetorch safetensors checkpoint (from `save`).")],
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Per-layer sparsity, nonzeros, bytes and theoretical speedup of a saved sparse model."""
    from sparsetorch import load, report

    result = report(load(checkpoint))
    if json_out:
        typer.echo(result.to_json(indent=2))
    else:
        console.print(result.table(title=str(checkpoint)))


def _load_model(spec: str):
    """A model by registry name (pretrained reference if it has a recipe), alias, or checkpoint path."""
    from sparsetorch import load
    from sparsetorch.models import MODELS, create_model
    from sparsetorch.models.pretrained import RECIPES, pretrained

    name = {"minilm": "minilm-l6", "tiny-gpt": "gpt-tiny"}.get(spec, spec)
    if Path(spec).suffix == ".safetensors" or Path(spec).is_file():
        return load(spec)
    if name in RECIPES:
        return pretrained(name)
    if name in MODELS:
        return create_model(name)
    MODELS.get(name)  # raises with "did you mean"


@app.command("prune")
def prune_cmd(
    model: Annotated[
        str, typer.Option(help="minilm, tiny-gpt, a registered model name, or a checkpoint path.")
    ],
    method: Annotated[
        str, typer.Option(help="One-shot method: magnitude, random, wanda, sparsegpt, dsnot, icbs.")
    ] = "wanda",
    sparsity: Annotated[float | None, typer.Option(help="Fraction of zeros; omit under N:M.")] = None,
    pattern: Annotated[
        str, typer.Option(help="unstructured, N:M (e.g. 2:4), blockHxW or channel.")
    ] = "unstructured",
    calibration: Annotated[
        str | None,
        typer.Option(help="Corpus for calibration: stdlib-docstrings, shakespeare, fashion-mnist, digits."),
    ] = None,
    samples: Annotated[int, typer.Option(help="Calibration samples (windows or images).")] = 128,
    seq_len: Annotated[int, typer.Option(help="Tokens per calibration window.")] = 128,
    distribution: Annotated[str, typer.Option(help="Layer budgets: uniform, erk or global.")] = "uniform",
    seed: Annotated[int, typer.Option(help="Seed for calibration sampling and random methods.")] = 0,
    out: Annotated[Path, typer.Option(help="Output folder: model.safetensors, report.json.")] = Path(
        "pruned"
    ),
) -> None:
    """Prune a model one-shot; write the sparse checkpoint, the report as JSON, and print the table."""
    from sparsetorch import prune, save

    if sparsity is None and ":" not in pattern:
        sparsity = 0.5
    _check_out_dir(out)  # before the work, not after it
    net = _load_model(model)
    rep = prune(
        net,
        method,
        sparsity,
        pattern,
        calibration=calibration,
        samples=samples,
        seq_len=seq_len,
        distribution=distribution,
        seed=seed,
        progress=True,
    )
    out.mkdir(parents=True, exist_ok=True)
    save(net, out / "model.safetensors")
    (out / "report.json").write_text(json.dumps(rep.to_dict(), indent=2))
    console.print(rep)
    console.print(f"wrote {out / 'model.safetensors'} and {out / 'report.json'}")


def _check_out_dir(out: Path) -> None:
    """Raise unless `out` is, or can be made, a folder we can write in (nothing is created here)."""
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent  # the nearest existing ancestor decides
    if not probe.is_dir():
        raise SparsetorchError(f"--out {out}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise SparsetorchError(f"--out {out}: folder {probe} is not writable")
    for name in ("model.safetensors", "report.json"):
        if (out / name).is_dir():
            raise SparsetorchError(
                f"--out {out}: {out / name} is a folder; it would be overwritten by a file"
            )


@models_app.command("train")
def models_train(
    name: Annotated[
        str, typer.Argument(help="A reference model with a training recipe, e.g. lenet-300-100.")
    ],
    force: Annotated[bool, typer.Option(help="Retrain even if a cached copy exists.")] = False,
) -> None:
    """Train a reference model by its seeded recipe and cache it as safetensors."""
    from sparsetorch.models.pretrained import pretrained, pretrained_metrics, train_reference

    if force:
        train_reference(name)
    else:
        pretrained(name)
    console.print(f"{name}: {pretrained_metrics(name)}")


@app.command("demo")
def demo(
    sparsities: Annotated[
        str, typer.Option(help="Comma-separated target sparsities for magnitude pruning.")
    ] = "0.5,0.8,0.9",
    distribution: Annotated[str, typer.Option(help="Layer budgets: uniform, erk or global.")] = "uniform",
) -> None:
    """Train (once, cached) LeNet-300-100 on Fashion-MNIST, prune by magnitude, report accuracy and sparsity."""
    from sparsetorch.demo import run_demo

    try:
        levels = [float(s) for s in sparsities.split(",") if s.strip()]
    except ValueError:
        raise SparsetorchError(f"--sparsities must be numbers like 0.5,0.9, got {sparsities!r}") from None
    run_demo(levels, distribution=distribution, console=console)


@bench_app.command("run")
def bench_run(
    suite: Annotated[str, typer.Option(help="quick, standard, full, or a suite YAML file.")] = "quick",
    dir: Annotated[
        Path | None, typer.Option("--dir", help="Bench directory (default: sparsetorch-bench/SUITE).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Runs at a time.")] = 2,
    ray: Annotated[
        str | None, typer.Option(help="Run on Ray: 'local' (start one here) or HOST:PORT of a cluster.")
    ] = None,
    retry_failed: Annotated[bool, typer.Option(help="Run again the runs recorded as failed.")] = True,
    report: Annotated[bool, typer.Option(help="Write DIR/report.html at the end.")] = True,
) -> None:
    """Run a suite; only runs not yet complete in DIR are run (kill and rerun to resume)."""
    from sparsetorch.bench import BenchError, Store, load_suite, run_sweep
    from sparsetorch.bench.report import leaderboard, write_report
    from sparsetorch.bench.runner import default_dir

    if workers < 1:
        raise BenchError(f"--workers must be at least 1, got {workers}")
    if dir is not None and dir.exists() and not dir.is_dir():
        raise BenchError(f"--dir {dir} is a file, not a bench directory")
    parsed = load_suite(suite)
    directory = dir or default_dir(parsed.name)
    console.print(f"suite [bold]{parsed.name}[/bold] ({parsed.path}): {len(parsed.runs)} runs -> {directory}")
    result = run_sweep(parsed.runs, directory, workers=workers, ray=ray, retry_failed=retry_failed)
    with Store(directory) as store:
        records = store.records(hashes=[spec.row()["config_hash"] for spec in parsed.runs])
    console.print(_leaderboard_table(leaderboard(records)))
    console.print(
        f"{result.completed} completed, {result.failed} failed, {result.skipped} already done or skipped, "
        f"in {result.seconds:.1f} s"
    )
    if report:
        console.print(f"report: {write_report(directory)}")
    if result.failed:
        raise typer.Exit(1)


def _leaderboard_table(rows: list[dict]) -> Table:
    from sparsetorch.bench.report import format_level

    table = Table(title="leaderboard (mean ± std over seeds)", header_style="bold")
    for column in ("task", "level", "rank", "method", "metric", "mean ± std", "seeds"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            r["task"],
            format_level(r["level"]),
            str(r["rank"]),
            r["method"],
            r["metric"],
            f"{r['mean']:.4g} ± {r['std']:.2g}",
            str(r["n"]),
        )
    return table


@bench_app.command("report")
def bench_report(dir: Annotated[Path, typer.Argument(help="A bench directory.")]) -> None:
    """Write DIR/report.html: curves, speed and size plots, leaderboards, environment, run configs."""
    from sparsetorch.bench.report import write_report

    console.print(f"report: {write_report(dir)}")


@bench_app.command("export")
def bench_export(
    dir: Annotated[Path, typer.Argument(help="A bench directory.")],
    csv: Annotated[bool, typer.Option("--csv", help="CSV (the default).")] = False,
    parquet: Annotated[bool, typer.Option("--parquet", help="Parquet (needs --out).")] = False,
    out: Annotated[Path | None, typer.Option(help="Write here (CSV default: standard output).")] = None,
) -> None:
    """One row per run: task, method, sparsity, pattern, seed, config hash, status, metrics."""
    from sparsetorch.bench import BenchError
    from sparsetorch.bench.export import export_runs

    if csv and parquet:
        raise BenchError("choose one of --csv and --parquet")
    result = export_runs(dir, fmt="parquet" if parquet else "csv", out=out)
    if out is None:
        sys.stdout.write(str(result))
    else:
        console.print(f"wrote {result}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
