"""The `fastgrpo` command: thin Typer wiring; the work lives in the packages."""

from __future__ import annotations

import typer

from fastgrpo import __version__
from fastgrpo.cli.config import config_app
from fastgrpo.cli.eval import eval_app
from fastgrpo.cli.export import export_command
from fastgrpo.cli.train import train_command
from fastgrpo.log import setup_logging

app = typer.Typer(
    name="fastgrpo",
    help=(
        "Train, evaluate and publish fast-slow thinking reasoning models with FAST-GRPO.\n\n"
        "  fastgrpo train configs/demo.yaml trainer.max_steps=10\n\n"
        "  fastgrpo eval --bench gsm8k,math500 --model runs/demo/export\n\n"
        "  fastgrpo export runs/demo --to hf --repo-id me/fast-demo"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fastgrpo {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Warnings and errors only."),
) -> None:
    setup_logging(verbose=verbose, quiet=quiet)


app.command(
    "train",
    context_settings={"allow_extra_args": False, "help_option_names": ["-h", "--help"]},
)(train_command)
app.command("export", context_settings={"help_option_names": ["-h", "--help"]})(export_command)
app.add_typer(eval_app, name="eval")
app.add_typer(config_app, name="config")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
