"""The `journeyman` command: run the stack, one service, migrations, the demo."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Annotated

import httpx
import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from journeyman.stack import DEFAULT_PORTS, SERVICES, Stack, read_state
from shared.settings import Settings

app = typer.Typer(
    help="Journeyman: customer journeys from a git repo of YAML files.", no_args_is_help=True
)
console = Console()
HOME = Path(".journeyman")
Home = Annotated[Path, typer.Option(help="Where embedded data, keys, logs and the inbox live.")]


@app.command()
def up(home: Home = HOME) -> None:
    """Start everything (embedded PostgreSQL and broker unless configured) until Ctrl-C."""
    stack = Stack(home, say=lambda m: console.print(f"[bold cyan]journeyman[/] {m}"))
    try:
        info = stack.start()
        print_info(info.services, info.write_key, info.api_key, info.outbox_dir)
        console.print("[bold]Press Ctrl-C to stop.[/]")
        signal.signal(signal.SIGTERM, _interrupt)
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        console.print("[bold cyan]journeyman[/] stopping")
        stack.stop()


def _interrupt(_signum: int, _frame: object) -> None:
    """SIGTERM stops the stack as cleanly as Ctrl-C does."""
    raise KeyboardInterrupt


def print_info(services: dict[str, str], write_key: str, api_key: str, outbox: str) -> None:
    table = Table(title="Journeyman")
    table.add_column("service")
    table.add_column("url")
    for name, url in services.items():
        table.add_row(name, url)
    console.print(table)
    console.print(f"ingestion write key: [bold]{write_key}[/] (HTTP Basic user name)")
    console.print(f"ops API key:         [bold]{api_key}[/] (Authorization: Bearer)")
    console.print(f"local inbox:         {outbox}")


@app.command()
def status(home: Home = HOME) -> None:
    """Show what runs where and whether each service is ready."""
    info = read_state(home)
    if info is None:
        console.print("nothing is running here (no state file); start with `journeyman up`")
        raise typer.Exit(1)
    table = Table(title="Journeyman status")
    for column in ("component", "where", "state"):
        table.add_column(column)
    table.add_row(
        "database", info.database_url, "embedded" if info.embedded_database else "external"
    )
    table.add_row(
        "broker", info.kafka_bootstrap_servers, "embedded" if info.embedded_broker else "external"
    )
    table.add_row("smtp inbox", info.smtp, info.outbox_dir)
    with httpx.Client(timeout=3) as client:
        for name, url in info.services.items():
            try:
                response = client.get(f"{url}/readyz")
                checks = response.json().get("checks", {})
                bad = {k: v for k, v in checks.items() if v != "ok"}
                state = "ready" if response.status_code == 200 else f"not ready: {bad}"
            except httpx.HTTPError as exc:
                state = f"down ({type(exc).__name__})"
            table.add_row(name, url, state)
    console.print(table)


@app.command(name="console")
def console_url(home: Home = HOME) -> None:
    """Print the web console's address and the key to log in with (measurement)."""
    info = read_state(home)
    if info is None or "profile" not in info.services:
        console.print("nothing is running here (no state file); start with `journeyman up`")
        raise typer.Exit(1)
    console.print(f"console: {info.services['profile']}/console")
    console.print(f"log in with the ops API key: [bold]{info.api_key}[/]")


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help=" | ".join(SERVICES))],
    host: str = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option(envvar="JOURNEYMAN_PORT", help="Defaults to 8001-8004 by service."),
    ] = None,
) -> None:
    """Run one service in this process (what `up`, docker-compose and Kubernetes start)."""
    import uvicorn

    from shared.web import SERVER_KEEP_ALIVE_S

    if service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    os.environ.setdefault("JOURNEYMAN_SERVICE_NAME", service)
    uvicorn.run(
        f"services.{service}.app:create_app",
        factory=True,
        host=host,
        port=port or DEFAULT_PORTS[service],
        log_config=None,
        access_log=False,
        timeout_keep_alive=SERVER_KEEP_ALIVE_S,
        # The loop the tests run on, even where uvloop is installed (uvicorn's "auto" would
        # pick it): end to end it measured no faster here (docs/performance.md, stop 18).
        loop="asyncio",
    )


@app.command()
def migrate() -> None:
    """Bring every service schema to its latest revision (run once per deploy)."""
    from shared.migrations import upgrade

    upgrade(Settings().database_url)
    console.print("migrations applied")


@app.command()
def topics(
    replication: Annotated[int, typer.Option(help="Replication factor (3 on a real cluster).")] = 1,
    partitions: Annotated[
        int | None, typer.Option(help="Partitions per topic (default 6; dead letters keep 1).")
    ] = None,
    retention_hours: Annotated[
        int | None, typer.Option(help="Retention of the non-compacted topics (broker default).")
    ] = None,
) -> None:
    """Create the topics that do not exist yet (TLS/SASL from the JOURNEYMAN_KAFKA_* settings)."""
    from shared.kafka import ensure_topics, security_options
    from shared.topics import for_cluster

    settings = Settings()
    specs = for_cluster(
        replication=replication, partitions=partitions, retention_hours=retention_hours
    )
    created = asyncio.run(
        ensure_topics(
            settings.kafka_bootstrap_servers,
            specs,
            replication=replication,
            security=security_options(settings),
        )
    )
    console.print(f"created: {', '.join(created) or 'nothing, all topics exist'}")


SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "docs" / "schemas"


def _definition_models() -> dict[str, tuple[type[BaseModel], str]]:
    from services.journey.dsl import Journey
    from services.segmenter.definitions import Segment

    return {
        "journey": (Journey, "Journeyman journey (journeys/*.yaml)"),
        "segment": (Segment, "Journeyman segment (segments/*.yaml)"),
    }


@app.command()
def schemas(
    directory: Path = SCHEMAS_DIR,
    check: Annotated[bool, typer.Option(help="Only check the files are up to date.")] = False,
) -> None:
    """Write the JSON Schemas of journey/segment files and the AsyncAPI document of the topics."""
    from shared.schemas import render_all, write_all

    if check:
        stale = [
            name
            for name, content in render_all(_definition_models()).items()
            if not (directory / name).exists() or (directory / name).read_bytes() != content
        ]
        if stale:
            console.print(f"out of date: {', '.join(stale)}; run `journeyman schemas`")
            raise typer.Exit(1)
        console.print("generated documents are up to date")
        return
    for path in write_all(directory, _definition_models()):
        console.print(f"wrote {path}")


@app.command()
def validate(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Journey files or directories.")
    ] = None,
    journeys: Annotated[Path | None, typer.Option(help="A journeys directory.")] = None,
    segments: Path = Path("segments"),
    templates: Path = Path("templates"),
) -> None:
    """Check journey and segment files; each problem as file:line:col (exit 1 if any)."""
    from journeyman.journeytools import validate_paths
    from services.segmenter.definitions import load_segments

    targets = [*(paths or []), *([journeys] if journeys else [])] or [Path("journeys")]
    checked, problems = validate_paths(targets, segments, templates)
    found_segments, segment_errors = load_segments(segments) if segments.is_dir() else ([], [])
    for problem in problems:
        console.print(str(problem), style="red", highlight=False, markup=False, soft_wrap=True)
    for error in segment_errors:
        console.print(str(error), style="red", highlight=False, markup=False, soft_wrap=True)
    console.print(f"{checked - len({p.path for p in problems})} of {checked} journeys and "
                  f"{len(found_segments)} segments valid")  # fmt: skip
    if problems or segment_errors:
        raise typer.Exit(1)


@app.command()
def simulate(
    journey: Path,
    profile: Annotated[
        Path | None, typer.Option(help="Profile JSON (traits, behaviour, ...).")
    ] = None,
    events: Annotated[Path | None, typer.Option(help="Events, one JSON object a line.")] = None,
    templates: Path = Path("templates"),
    days: Annotated[int, typer.Option(help="How far past the last event to run the clock.")] = 60,
) -> None:
    """Run a journey for one customer on a virtual clock; print the path and the messages."""
    from datetime import timedelta

    import orjson

    from journeyman.journeytools import read_events
    from journeyman.journeytools import simulate as run

    person = orjson.loads(profile.read_bytes()) if profile else {}
    lines = run(journey, person, read_events(events) if events else [], templates,
                timedelta(days=days))  # fmt: skip
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)


@app.command()
def backtest(
    journey: Path,
    since: Annotated[str, typer.Option(help="How far back, e.g. 30d.")] = "30d",
) -> None:
    """Replay stored events (the profile timeline, read-only) through a draft journey."""
    from datetime import UTC, datetime

    from journeyman.journeytools import _load, load_history, replay, since_of

    draft = _load(journey)
    history, people = asyncio.run(load_history(Settings().database_url, since_of(since)))
    result = replay(draft, history, people, datetime.now(UTC))
    table = Table(title=f"backtest of {draft.id} v{draft.version} over {since}")
    table.add_column("measure")
    table.add_column("count", justify="right")
    for name, value in (("customers with events", result.customers), ("events", result.events),
                        ("entered", result.entered), ("converted", result.converted)):  # fmt: skip
        table.add_row(name, str(value))
    for step in draft.steps:
        table.add_row(f"step {step.id}", str(result.per_step.get(step.id, 0)))
    for template, n in sorted(result.sends.items()):
        table.add_row(f"would send {template}", str(n))
    console.print(table)


@app.command()
def diagram(
    journey: Path,
    out: Annotated[Path, typer.Option(help="Directory for the .mmd (and .svg) files.")] = Path(
        "docs/diagrams"
    ),
) -> None:
    """Draw a journey: Mermaid always, SVG too when Graphviz `dot` is installed."""
    from journeyman.journeytools import write_diagram

    for path in write_diagram(journey, out):
        console.print(f"wrote {path}")


@app.command(hidden=True)
def inbox(directory: Path, host: str = "127.0.0.1", port: int = 2525, keep: bool = True) -> None:
    """Run the local SMTP inbox: every message becomes an .eml file in DIRECTORY."""
    from journeyman.inbox import serve_forever

    serve_forever(directory, host, port, keep=keep)


@app.command(hidden=True)
def providers(
    host: str = "127.0.0.1", port: int = 8010, callbacks: bool = True, keep: bool = True
) -> None:
    """Run the local SMS (Twilio API), push (FCM v1 API) and webhook provider server."""
    from journeyman.providers import serve_forever

    serve_forever(host, port, status_callbacks=callbacks, keep_bodies=keep)


@app.command()
def demo(
    home: Home = HOME,
    customers: Annotated[int, typer.Option(help="Synthetic customers.")] = 60,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic shop.")] = 7,
) -> None:
    """Start the stack, send a demo shop's traffic through real journeys, summarise, stop."""
    from journeyman.demo import run_demo

    raise typer.Exit(run_demo(home, customers, seed, console))


dlq_app = typer.Typer(help="Inspect and replay the dead-letter topic.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")


def _broker_settings(home: Path) -> Settings:
    """Settings from the environment, or the broker of the stack `journeyman up` runs here."""
    settings = Settings()
    info = read_state(home)
    if "KAFKA_BOOTSTRAP_SERVERS" not in os.environ and info is not None:
        settings = settings.model_copy(
            update={"kafka_bootstrap_servers": info.kafka_bootstrap_servers}
        )
    return settings


@dlq_app.command("list")
def dlq_list(home: Home = HOME, limit: int = 100) -> None:
    """The dead letters: offset, where each came from, and why it failed."""
    from journeyman.dlq import list_dead_letters

    letters = asyncio.run(list_dead_letters(_broker_settings(home), limit))
    table = Table(title=f"jm.dead-letter ({len(letters)} shown)")
    for column in ("offset", "source", "bytes", "reason"):
        table.add_column(column)
    for d in letters:
        table.add_row(str(d.offset), d.source, str(len(d.value)), d.reason[:120])
    console.print(table)


@dlq_app.command("show")
def dlq_show(offset: int, home: Home = HOME) -> None:
    """One dead letter in full: headers and the original bytes."""
    from journeyman.dlq import list_dead_letters

    found = [
        d for d in asyncio.run(list_dead_letters(_broker_settings(home))) if d.offset == offset
    ]
    if not found:
        console.print(f"no dead letter at offset {offset}")
        raise typer.Exit(1)
    letter = found[0]
    for name, value in letter.headers:
        console.print(f"{name}: {value.decode('utf-8', 'replace')}", highlight=False)
    console.print(f"key: {letter.key!r}")
    console.print(letter.value.decode("utf-8", "replace"), highlight=False, markup=False)


@dlq_app.command("replay")
def dlq_replay(
    home: Home = HOME,
    offset: Annotated[int | None, typer.Option(help="Replay only this record.")] = None,
) -> None:
    """Send dead letters back to their source topics (each replayed once)."""
    from journeyman.dlq import replay

    replayed = asyncio.run(replay(_broker_settings(home), offset))
    console.print(f"replayed {len(replayed)} record(s)")


BENCHMARKS = ("e2e", "profile", "segmenter", "rfm", "journey", "channels", "capacity")


@app.command()
def bench(
    name: Annotated[str, typer.Argument(help=" | ".join(BENCHMARKS))] = "e2e",
    size: Annotated[str, typer.Option(help="small | default | large")] = "default",
    json_path: Annotated[Path | None, typer.Option("--json", help="Write figures here.")] = None,
    replicas: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="journey and channels: processes of the service (2 by default); the journey's "
            "throughput phase always runs one.",
        ),
    ] = None,
) -> None:
    """Measure a service (or the whole system) against the raw pass-through baseline."""
    import importlib

    if name not in BENCHMARKS:
        raise typer.BadParameter(f"unknown benchmark {name!r}; one of {', '.join(BENCHMARKS)}")
    if replicas is not None and name not in {"journey", "channels"}:
        raise typer.BadParameter("--replicas applies to the journey and channels benchmarks")
    try:
        module = importlib.import_module(f"journeyman.bench.{name}")
    except ModuleNotFoundError as exc:
        console.print(f"the {name} benchmark is not built yet ({exc.name})")
        raise typer.Exit(2) from exc
    module.run(size, json_path, console, *([] if replicas is None else [replicas]))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
