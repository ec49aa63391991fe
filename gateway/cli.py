"""``gateway`` command line: serve, worker, db upgrade, certs init, demo, accounts,
corrections, refunds, history, selfcheck.

The operators' commands (accounts, corrections, refunds, history, selfcheck) log their
person in with a dashboard account: ``--account LOGIN``, the password asked for (not
echoed) or read from ``--password-file FILE`` or ``$GATEWAY_ACCOUNT_PASSWORD``."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from gateway.commands.rework import corrections_app, history, refunds_app
from gateway.commands.selfcheck import selfcheck_app
from gateway.dashboard.cli import accounts_app
from gateway.settings import Settings

app = typer.Typer(help="Bank gateway of the 一卡通 subsidy payment scheme.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
certs_app = typer.Typer(help="Development keys and certificates.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(certs_app, name="certs")
app.add_typer(accounts_app, name="accounts")
app.add_typer(corrections_app, name="corrections")
app.add_typer(refunds_app, name="refunds")
app.add_typer(selfcheck_app, name="selfcheck")
app.command("history")(history)


def _logging(settings: Settings, name: str) -> None:
    from gateway.kit.logging import configure_logging  # noqa: PLC0415

    log_file = settings.log_file
    if log_file is not None and log_file.is_dir():
        log_file = log_file / f"{name}.log"
    configure_logging(json=settings.log_json, level=settings.log_level, file=log_file)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    fd: Annotated[
        int | None,
        typer.Option(
            help="Serve on this inherited, already bound socket instead of --host/--port "
            "(socket activation; the demo hands its API socket over this way)."
        ),
    ] = None,
) -> None:
    """Run the upstream HTTP API and the operators' dashboard (under /dashboard)."""
    import uvicorn  # noqa: PLC0415

    from gateway.api.app import create_app  # noqa: PLC0415
    from gateway.context import Context  # noqa: PLC0415

    settings = Settings()
    _logging(settings, "api")
    api = create_app(Context.build(settings))
    if fd is not None:
        uvicorn.run(api, fd=fd, log_config=None)
    else:
        uvicorn.run(api, host=host, port=port, log_config=None)


@app.command()
def worker(
    once: Annotated[bool, typer.Option(help="Run one cycle and exit.")] = False,
    max_seconds: Annotated[float | None, typer.Option(help="Stop after this long.")] = None,
) -> None:
    """Run the dispatch/feedback worker (several may run at once against PostgreSQL)."""
    from gateway.context import Context  # noqa: PLC0415
    from gateway.worker import default_worker_id, run_cycle, run_worker  # noqa: PLC0415

    settings = Settings()
    _logging(settings, "worker")
    ctx = Context.build(settings)
    if once:
        report = run_cycle(ctx, settings.worker_id or default_worker_id())
        typer.echo(report)
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run_worker(ctx, stop=stop, max_seconds=max_seconds)


@db_app.command("upgrade")
def db_upgrade(revision: str = "heads") -> None:
    """Migrate the database named by GATEWAY_DATABASE_URL to the latest schema."""
    from gateway.kit.migrate import upgrade  # noqa: PLC0415

    settings = Settings()
    upgrade(settings.database_url, revision)
    typer.echo(f"database at {revision}: {settings.database_url.split('@')[-1]}")


@certs_app.command("init")
def certs_init(
    directory: Annotated[Path, typer.Option("--dir", help="Where to write.")] = Path("certs/dev"),
    force: Annotated[bool, typer.Option(help="Replace existing keys.")] = False,
) -> None:
    """Generate development signing keys and SFTP keys (never for production)."""
    from gateway.certs import init_dev_keys  # noqa: PLC0415

    written = init_dev_keys(directory, force=force)
    for path in written:
        typer.echo(f"wrote {path}")
    if not written:
        typer.echo(f"keys already present in {directory} (use --force to replace)")


@app.command()
def demo(
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    workdir: Annotated[Path, typer.Option(help="Where the demo keeps its files.")] = Path(".demo"),
    seed: Annotated[int, typer.Option(help="Seed of the demo data.")] = 20261128,
    serve: Annotated[
        bool, typer.Option("--serve", help="Afterwards, open the dashboard on loopback.")
    ] = False,
    serve_only: Annotated[
        bool, typer.Option("--serve-only", help="Only serve the last demo's dashboard.")
    ] = False,
    port: Annotated[int, typer.Option(help="Dashboard port for --serve.")] = 8765,
) -> None:
    """Run the whole pipeline on SQLite and the mock bank, then print a summary."""
    from gateway.demo.runner import run_demo  # noqa: PLC0415
    from gateway.demo.serve import serve_dashboard  # noqa: PLC0415

    code = 0
    if not serve_only:
        code = run_demo(workdir=workdir, json_output=json_output, seed=seed)
    if serve or serve_only:
        serve_dashboard(workdir, port)
    elif not json_output:
        typer.echo(
            "\nTo look at it in the operators' dashboard: `.venv/bin/gateway demo --serve-only` "
            "(or `make demo-serve`), then open the address it prints."
        )
    raise typer.Exit(code)


if __name__ == "__main__":
    app()
