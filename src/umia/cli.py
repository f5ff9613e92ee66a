"""The ``umia`` command: run a study from any folder, see where it stands, read its answer.

    umia run [CONFIG.yaml ...] [--profile default|slurm|cluster-generic|FOLDER] [SNAKEMAKE OPTION ...]
    umia status [RESULTS_DIR]
    umia report [RESULTS_DIR]
    umia config [CONFIG.yaml ...]

``umia run`` is the workflow of the installed package (its Snakefile, rules and default config,
shipped as package data) run in the current folder: results go to ``./results/<experiment>``.
Snakemake is driven through its own argument parser and Python API (``snakemake.cli.parse_args``,
``args_to_api``), so every Snakemake option works and the profiles behave as with ``snakemake``.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click
import yaml

import umia
from umia.errors import UmiaError

CONFIG_SUFFIXES = (".yaml", ".yml", ".json")


def workflow_dir() -> Path:
    """Where the workflow is: the installed package's copy, or the repository of an editable install."""
    packaged = Path(umia.__file__).parent / "_workflow"
    if (packaged / "Snakefile").is_file():
        return packaged
    repo = Path(umia.__file__).resolve().parents[2]
    if (repo / "Snakefile").is_file() and (repo / "workflow/rules").is_dir():
        return repo
    raise click.ClickException("the umia package carries no workflow (a broken install): reinstall it with pip")


def _fail(message: str) -> None:
    click.echo(f"umia: {message}", err=True)
    sys.exit(1)


def _split(args: tuple[str, ...]) -> tuple[list[Path], list[str]]:
    """Config files (the leading ``*.yaml``, ``*.yml``, ``*.json`` arguments) and the rest,
    Snakemake's options and targets."""
    configs, rest = [], list(args)
    while rest and not rest[0].startswith("-") and rest[0].endswith(CONFIG_SUFFIXES):
        configs.append(Path(rest.pop(0)))
    for c in configs:
        if not c.is_file():
            _fail(f"config file {c} does not exist; give the path of your YAML config (or none: the default study)")
    return configs, rest


def _profile(name: str) -> Path:
    path = Path(name)
    if path.is_dir():
        return path
    shipped = workflow_dir() / "profiles" / name
    if shipped.is_dir():
        return shipped
    known = ", ".join(sorted(p.name for p in (workflow_dir() / "profiles").iterdir() if p.is_dir()))
    _fail(f"profile {name!r} is neither a folder nor one of umia's ({known}); give one of those or a folder")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(umia.__version__, prog_name="umia")
def main() -> None:
    """How much privacy does an unlearning method really give, example by example?"""


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--profile", default="default", show_default=True, help="default, slurm, cluster-generic, or a folder")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="a live view of models done per stage and an ETA (default: on in a terminal)",
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run(profile: str, progress: bool | None, args: tuple[str, ...]) -> None:
    """Run a study here: CONFIG files (none: the default digits study), then any Snakemake option
    (-n for a dry run, --cores 8, --keep-going, targets ...). Results go to ./results/<experiment>."""
    from snakemake.cli import args_to_api, parse_args

    configs, rest = _split(args)
    wf = workflow_dir()
    argv = ["--snakefile", str(wf / "Snakefile"), "--workflow-profile", str(_profile(profile))]
    if configs:
        argv += ["--configfile", *map(str, configs)]
    live = sys.stderr.isatty() if progress is None else progress
    if live and not any(a == "--quiet" or a.startswith("--quiet=") for a in rest):
        argv += ["--quiet", "rules", "progress"]  # the live view says it; Snakemake's warnings and errors still show
    parser, parsed = parse_args([*argv, *rest])
    dry = bool(getattr(parsed, "dryrun", False))
    with _live_view(_results_of(configs) if live and not dry else None):
        ok = args_to_api(parsed, parser)
    sys.exit(0 if ok else 1)


def _results_of(configs: list[Path]) -> Path | None:
    """``results_dir/experiment`` of the run's config (None if the config does not resolve: the
    run itself then says why)."""
    try:
        wf = workflow_dir()
        merged = yaml.safe_load((wf / "config/config.yaml").read_text())
        for f in configs:
            merged.update(
                {k: v for k, v in (yaml.safe_load(f.read_text()) or {}).items() if k in ("results_dir", "experiment")}
            )
        return Path(merged.get("results_dir", "results")) / merged.get("experiment", "digits")
    except (OSError, KeyError, yaml.YAMLError):
        return None


@contextlib.contextmanager
def _live_view(results: Path | None):
    """While the block runs, a live view (Rich) of ``umia status`` at the bottom of the terminal,
    refreshed every two seconds; Snakemake's own lines scroll above it."""
    if results is None:
        yield
        return
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

    from umia.report import status as st

    def view() -> Text:
        try:
            return Text(st.render(st.status(results)))
        except Exception:  # nothing to show yet (no stamp before the run starts)
            return Text(f"umia: starting the study in {results} ...")

    with Live(get_renderable=view, console=Console(stderr=True), refresh_per_second=0.5, transient=True):
        yield


def _results(results: str | None) -> Path:
    """The study folder: the one given, or the only one under ./results."""
    if results:
        return Path(results)
    found = sorted(p.parent for p in Path("results").glob("*/.umia-study.json"))
    if len(found) == 1:
        return found[0]
    if not found:
        _fail("no study under ./results; give its folder, e.g. umia status results/digits")
    _fail(
        f"several studies under ./results ({', '.join(p.name for p in found)}); give one, e.g. umia status {found[0]}"
    )


@main.command()
@click.argument("results", required=False)
def status(results: str | None) -> None:
    """Where a study stands: per stage, models done out of the total, what is running, an ETA."""
    from umia.report import status as st

    try:
        click.echo(st.render(st.status(_results(results))))
    except UmiaError as e:
        _fail(str(e))


@main.command()
@click.argument("results", required=False)
def report(results: str | None) -> None:
    """A finished study's answer: the controls' verdict, each method's line, the report page."""
    from umia.report import verdict

    path = _results(results)
    summary = path / "tables/summary.csv"
    if not summary.is_file():
        _fail(f"{path} has no tables/summary.csv yet: the study's attacks have not run (umia status {path})")
    utility = path / "tables/utility.csv"
    click.echo(verdict.terminal(str(summary)))
    click.echo(verdict.answer(str(summary), str(utility) if utility.is_file() else None))
    page = path / "report/summary.html"
    click.echo(f"report: {page}" if page.is_file() else f"no report page yet ({page})")


@main.command("config")
@click.argument("configs", nargs=-1)
def show_config(configs: tuple[str, ...]) -> None:
    """The effective config of a study, every default filled in, as the run will use it."""
    from snakemake.utils import update_config

    from umia.config import resolve, with_task_defaults
    from umia.schema import load_schema

    files, rest = _split(configs)
    if rest:
        _fail(f"umia config takes config files only, not {' '.join(rest)}")
    wf = workflow_dir()
    given: dict = {}  # the user's files, merged as Snakemake merges them, over the default file
    merged = yaml.safe_load((wf / "config/config.yaml").read_text())
    for f in files:
        update_config(given, yaml.safe_load(f.read_text()) or {})
        update_config(merged, yaml.safe_load(f.read_text()) or {})
    try:
        cfg = resolve(with_task_defaults(merged, given), load_schema(wf / "workflow/schemas/config.schema.yaml"))
    except UmiaError as e:
        _fail(str(e))
    click.echo(yaml.safe_dump(cfg, sort_keys=False), nl=False)


if __name__ == "__main__":
    main()
