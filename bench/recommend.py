"""Recommendations offline (issue 17): HR@10 and NDCG@10 of the hybrid, CF alone, content alone and the popularity
baseline on a time split of generated data (:mod:`models.recommend_eval`), and the bytes priority categories add to
each user's state. One run record; the section "Recommendations" of docs/models.md is written from it.

    churnstream bench recommend --users 3000 --days 365 --seed 0 --split-day 300
"""

from __future__ import annotations

import sys

import msgspec
import orjson
from rich.console import Console
from rich.table import Table

from bench.records import DOCS, Run
from bench.report import update_section
from core.days import DAY_MS
from features import offline
from features.state import UserState, apply, encode_state
from models.recommend_eval import evaluate
from simulation.generator import DEFAULT_START_MS, make_users, simulate

NAMES = {"hybrid": "hybrid (CF + content)", "cf": "CF alone", "content": "content alone", "popularity": "popularity"}


def category_bytes(events: list[dict]) -> list[int]:
    """What the priority categories add to each user's encoded state, after all their events."""
    out = []
    for evs in offline.accept((e["type"], orjson.dumps(e)) for e in events).values():
        s = UserState()
        for ev in evs:
            apply(s, ev)
        bare = msgspec.structs.replace(s, interest={}, interest_ms=0)
        out.append(len(encode_state(s)) - len(encode_state(bare)) + 2)
    return out


def section(record: Run, result: dict) -> str:
    f, s = record.figures, result["scorers"]
    lines = [
        f"Command: `{record.command}` at commit `{record.commit[:12]}`, {record.started_utc}, on "
        f"{record.machine['cores']} cores (load average {record.machine['load_average_at_start'][0]} at the start). "
        f"{record.sizes['events']:,} generated events of {record.sizes['users']:,} users over "
        f"{record.sizes['days']} days (seed {record.sizes['seed']}); fitted on the events before day "
        f"{record.sizes['split_day']}, measured on the {result['users']:,} users who then bought, within 30 days, "
        f"an item they had not bought before ({result['items']} items in the model). Run record: "
        f"[`{record.run_id}`](benchmark-runs/{record.run_id}.json).",
        "",
        f"The blend's weight `alpha` was chosen on a validation split 30 days earlier ({result['validation_users']:,} "
        f"users), by NDCG@10: {', '.join(f'{a}: {v:.4f}' for a, v in result['validation_ndcg'].items())}. "
        f"Chosen: **{result['alpha']}**.",
        "",
        "| scorer | HR@10 [95% CI] | NDCG@10 [95% CI] | NDCG@10 minus popularity [95% CI] |",
        "|---|---:|---:|---:|",
    ]
    for name, label in NAMES.items():
        r = s[name]
        lines.append(
            f"| {label} | {r['hr']:.4f} [{r['hr_ci'][0]:.4f}, {r['hr_ci'][1]:.4f}] | {r['ndcg']:.4f} "
            f"[{r['ndcg_ci'][0]:.4f}, {r['ndcg_ci'][1]:.4f}] | "
            + ("-" if name == "popularity" else "[{:+.4f}, {:+.4f}]".format(*r["ndcg_vs_popularity_ci"]))
            + " |"
        )
    lines += [
        "",
        f"Priority categories add {f['category_state_bytes_mean']:.0f} bytes to a user's state on average, "
        f"{f['category_state_bytes_max']} at most, over these users (bound: 200).",
    ]
    return "\n".join(lines)


def run(console: Console, users: int, days: int, seed: int, split_day: int) -> dict:
    record = Run.start("recommend", sys.argv)
    with console.status(f"simulating {users:,} users over {days} days"):
        events = simulate(make_users(users, days, seed=seed), days, seed=seed)
    record.sizes = {"users": users, "days": days, "seed": seed, "split_day": split_day, "events": len(events)}
    with console.status("fitting and evaluating (validation split, then test split)"):
        result = evaluate(events, split_ms=DEFAULT_START_MS + split_day * DAY_MS)
    sizes = category_bytes(events)
    s = result["scorers"]
    record.figures.update(
        recommend_hybrid_hr10=s["hybrid"]["hr"],
        recommend_hybrid_ndcg10=s["hybrid"]["ndcg"],
        recommend_popularity_hr10=s["popularity"]["hr"],
        recommend_popularity_ndcg10=s["popularity"]["ndcg"],
        category_state_bytes_mean=round(sum(sizes) / len(sizes), 1),
        category_state_bytes_max=max(sizes),
    )
    record.details = result
    path = record.save()
    update_section("recommend", section(record, result), path=DOCS / "models.md")
    table = Table(title=f"Recommendations, {result['users']:,} test users (alpha {result['alpha']})")
    for column in ("scorer", "HR@10", "NDCG@10"):
        table.add_column(column)
    for name, label in NAMES.items():
        table.add_row(label, f"{s[name]['hr']:.4f}", f"{s[name]['ndcg']:.4f}")
    console.print(table)
    console.print(f"run record: {path.relative_to(DOCS.parent)}")
    return result
