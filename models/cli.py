"""The model commands: ``churnstream train`` (on :func:`models.train.train_all`) and ``churnstream models``.

``churnstream/cli.py`` registers :func:`train` as a top-level command and :data:`models_app` as the ``models`` group.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from churnstream.console import console
from churnstream.settings import get_settings

if TYPE_CHECKING:
    from models.registry import Registry

models_app = typer.Typer(help="The model registry: list versions, promote a champion.", no_args_is_help=True)


def _registry() -> Registry:
    from models.registry import Registry

    return Registry(get_settings().registry_dir())


def train(
    users: int = typer.Option(5000, help="simulated users (when no --events is given)"),
    days: int = typer.Option(365, help="days of simulated history"),
    seed: int = typer.Option(0, help="random seed"),
    events: Path | None = typer.Option(None, help="train on this JSONL/CSV history instead of a simulation"),
    per_user: int = typer.Option(12, help="rows per training user, about (4x per validation and test user)"),
    report: bool = typer.Option(True, help="write docs/models.md and docs/models.json"),
    progressive_users: int = typer.Option(
        2000, help="users of the separate stream for progressive validation of the online models (0 = skip)"
    ),
) -> None:
    """Train logreg, SVM, random forest and XGBoost per task on point-in-time data; promote the best."""
    from models import clusters_report
    from models import report as model_report
    from models.train import train_all

    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as bar:
        step = bar.add_task("preparing history", total=None)
        run = train_all(
            _registry(),
            users=users,
            days=days,
            seed=seed,
            events=events,
            per_user=per_user,
            progressive_users=progressive_users,
            progress=lambda msg: bar.update(step, description=msg),
        )
    for task, r in run.reports.items():
        console.print(_metrics_table(task, r))
    for t, q in (run.progressive or {}).items():
        console.print(
            f"{t}: online ROC-AUC {q['online']['roc_auc']:.4f} vs champion "
            f"{q['champion']['roc_auc']:.4f} on the later half ({q['labels']['n']:,.0f} labels)"
        )
    if report:
        command = (
            f"churnstream train --users {users} --days {days} --seed {seed}"
            if events is None
            else f"churnstream train --events {events}"
        )
        model_report.write(run.reports, command, run.source, run.progressive)
        if run.clusters is not None:
            clusters_report.write(run.clusters, command, run.source)
        console.print("wrote docs/models.md and docs/models.json")


def _metrics_table(task: str, r: dict[str, Any]) -> Table:
    """The test metrics of every model of ``task`` (and of the oracle, when known), one row each."""
    table = Table(title=f"{task}: test metrics (champion {r['champion']})")
    for col in ("model", "ROC-AUC", "PR-AUC", "log loss", "Brier", "1 row us", "batch us/row"):
        table.add_column(col)
    rows = ([("oracle", r["oracle"])] if "oracle" in r else []) + list(r["models"].items())
    for name, m in rows:
        latency = (f"{m['single_row_us']:.0f}", f"{m['batch_per_row_us']:.2f}") if name != "oracle" else ("-", "-")
        table.add_row(
            name, f"{m['roc_auc']:.4f}", f"{m['pr_auc']:.4f}", f"{m['log_loss']:.4f}", f"{m['brier']:.4f}", *latency
        )
    return table


@models_app.command("list")
def models_list() -> None:
    """Every registered version with its test AUC; the champion of each task is marked."""
    from models.pretrained import MODEL_NAMES
    from models.registry import ModelRejected

    registry = _registry()
    table = Table()
    for col in ("task", "model", "version", "ROC-AUC", "champion"):
        table.add_column(col)
    for task in ("churn", "purchase"):
        champion = registry.champion(task)
        for model in MODEL_NAMES:
            for ref in registry.versions(task, model):
                try:
                    auc = f"{registry.meta(ref)['metrics']['roc_auc']:.4f}"
                except (ModelRejected, KeyError):
                    auc = "unreadable"
                table.add_row(task, model, ref.version, auc, "*" if ref == champion else "")
    console.print(table)


@models_app.command("promote")
def models_promote(task: str, model: str, version: str = typer.Option("", help="default: the latest")) -> None:
    """Make a model version the champion of a task (checked before it takes effect)."""
    from models.registry import ModelRef, ModelRejected

    registry = _registry()
    ref = ModelRef(task, model, version) if version else registry.latest(task).get(model)
    if ref is None:
        raise typer.BadParameter(f"no {model} versions for {task}")
    try:
        registry.promote(ref)
    except ModelRejected as exc:
        console.print(f"[red]refused:[/] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"champion of {task} is now {ref}")


@models_app.command("drift")
def models_drift(
    day: str = typer.Option("", help="The day to check, YYYY-MM-DD (default: the latest day of the live sample)"),
    top: int = typer.Option(10, help="Features shown per task, by PSI (all of them past the warn level)"),
    warn: float = typer.Option(0.1, help="PSI from which a shift is worth a look"),
    alert: float = typer.Option(0.25, help="PSI from which a population has shifted"),
) -> None:
    """PSI of a day's live population (the worker's `daily_features` sample and the champion's time-row scores)
    against each champion's training rows. With embedded ClickHouse, run it while no worker holds the data path."""
    import datetime as dt

    from core.tasks import TASKS
    from infra import clickhouse_db
    from models import drift, population

    registry, settings = _registry(), get_settings()
    client = clickhouse_db.connect(settings.clickhouse_dsn)
    try:
        when = dt.date.fromisoformat(day) if day else population.latest_day(client)
        if when is None:
            console.print("no live population yet: the worker samples users at the day ends it rescores them")
            raise typer.Exit(1)
        for task in TASKS:
            ref = registry.champion(task)
            profile = registry.meta(ref).get("drift") if ref else None
            if ref is None or profile is None:
                console.print(f"{task}: no champion with a training profile (one trained before drift: train again)")
                continue
            rows = population.report(
                client, when, drift.Profile.from_json(profile), task, ref.model, ref.version, (warn, alert)
            )
            score, features = rows[0], sorted(rows[1:], key=lambda d: d.psi, reverse=True)
            shown = [d for i, d in enumerate(features) if i < top or d.level in ("warn", "alert")]
            table = Table(title=f"{task}: {ref} on {when} ({score.rows:,} scores, {features[0].rows:,} sampled users)")
            for col in ("statistic", "PSI", "level"):
                table.add_column(col)
            for d in [score, *shown]:
                colour = {"alert": "red", "warn": "yellow"}.get(d.level, "")
                level = f"[{colour}]{d.level}[/]" if colour else d.level
                table.add_row(d.feature or "score", f"{d.psi:.4f}", level)
            console.print(table)
    finally:
        client.close()


def retrain(
    task: str = typer.Option("", help="One task (default: both)"),
    per_user: int = typer.Option(12, help="rows per training user, about (4x per validation and test user)"),
    seed: int = typer.Option(0, help="random seed of the user split"),
    events_file: Path | None = typer.Option(None, help="read the history from this Native file (a worker's export)"),
) -> None:
    """Retrain the four models per task on the ClickHouse `events` history up to now and decide, by the guardrails
    (CHURNSTREAM_RETRAIN_*), whether the best becomes the champion or a challenger. With embedded ClickHouse, run it
    while no worker holds the data path."""
    import tempfile

    from core.tasks import TASKS
    from features import offline
    from infra import clickhouse_db
    from models.retrain import Guardrails, retrain

    settings = get_settings()
    scratch = tempfile.TemporaryDirectory() if events_file else None  # a chDB of its own, to read the file
    client = clickhouse_db.connect(f"chdb://{scratch.name}" if scratch else settings.clickhouse_dsn)
    try:
        with console.status("reading the events history from ClickHouse"):
            source = f"file('{events_file}', 'Native')" if events_file else "events FINAL"
            accepted = offline.read_clickhouse(client, source=source)
    finally:
        client.close()
        if scratch is not None:
            scratch.cleanup()
    events = sum(len(v) for v in accepted.values())
    if not events:
        console.print("[red]no events in ClickHouse yet[/]")
        raise typer.Exit(1)
    last = max(e.ts_ms for evs in accepted.values() for e in evs)
    source = f"ClickHouse events: {events:,} events of {len(accepted):,} users up to {last} ms"
    rails = Guardrails(
        settings.retrain_auc_margin, settings.retrain_calibration_slack, settings.retrain_holdout_days,
        settings.retrain_share,
    )  # fmt: skip
    tasks = (task,) if task else tuple(TASKS)
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console) as bar:
        step = bar.add_task("retraining", total=None)
        records = retrain(
            _registry(), accepted, source, rails, tasks, per_user=per_user, seed=seed,
            progress=lambda msg: bar.update(step, description=msg),
        )  # fmt: skip
    for r in records:
        console.print(f"{r['task']}: {r['status']}, {r.get('decision')}: {r.get('candidate', '')} ({r['reason']})")
    if any(r["status"] == "failed" for r in records):
        raise typer.Exit(1)
