"""The calendar-cutoff part of docs/models.md and docs/models.json (``models/cutoffs.py`` measures it): each
scorer's mean ROC-AUC over the cutoffs with its interval, each cutoff's figures, the paired differences, and
issue 14's targets said met or missed."""

from __future__ import annotations

from typing import Any

from models.cutoffs import BGNBD, ORACLE, RECENCY


def difference(d: dict[str, Any]) -> dict[str, Any]:
    """A paired ROC-AUC difference, rounded: value, interval, and whether the interval contains 0."""
    auc = d["roc_auc"]
    return {
        "roc_auc": round(auc["value"], 4),
        "ci": [round(auc["low"], 4), round(auc["high"], 4)],
        "within_noise": bool(auc["within_noise"]),
    }


_CALENDAR_KEYS = {"champion": "calendar_champion_auc", ORACLE: "calendar_oracle_auc"}
_CALENDAR_KEYS.update({RECENCY: "calendar_recency_auc", BGNBD: "calendar_bgnbd_auc"})


def calendar_summary(cal: dict[str, Any] | None) -> dict[str, Any]:
    """The calendar-cutoff figures of one task in docs/models.json: the mean ROC-AUC over the cutoffs of the
    champion, the oracle, days-since-last-event and BG/NBD (``calendar_*_auc``), every scorer's mean with its
    interval, the paired differences, and each cutoff's ROC-AUCs."""
    if not cal or not cal["cutoffs"]:
        return {}
    mean = cal["mean"]
    scorers = list(cal["cutoffs"][0]["roc_auc"])
    out: dict[str, Any] = {
        "calendar_models": {n: round(mean[n]["value"], 4) for n in scorers},
        "calendar_models_ci": {n: [round(mean[n]["low"], 4), round(mean[n]["high"], 4)] for n in scorers},
        "calendar_differences": {
            k: {**difference({"roc_auc": v}), "roc_auc": round(v["value"], 4)} for k, v in mean.items() if " - " in k
        },
        "calendar_cutoffs": [
            {
                "date": c["date"],
                "users": c["users"],
                "positive_rate": round(c["positive_rate"], 4),
                "roc_auc": {n: round(v["value"], 4) for n, v in c["roc_auc"].items()},
                "roc_auc_ci": {n: [round(v["low"], 4), round(v["high"], 4)] for n, v in c["roc_auc"].items()},
            }
            for c in cal["cutoffs"]
        ],
    }
    for name, key in _CALENDAR_KEYS.items():
        scorer = cal["champion"] if name == "champion" else name
        if scorer in mean:
            out[key] = round(mean[scorer]["value"], 4)
    return out


def _ival(c: dict[str, float], digits: int = 4, sign: str = "") -> str:
    return f"{c['value']:{sign}.{digits}f} [{c['low']:{sign}.{digits}f}, {c['high']:{sign}.{digits}f}]"


def calendar_markdown(task: str, cal: dict[str, Any] | None) -> list[str]:
    """The calendar-cutoff part of one task: each scorer's mean ROC-AUC over the cutoffs with its interval and
    its ROC-AUC at each cutoff, then the champion's paired differences against the oracle and the baselines."""
    if not cal or not cal["cutoffs"]:
        return []
    cuts, mean, champion = cal["cutoffs"], cal["mean"], cal["champion"]
    lines = [
        f"#### {task} at calendar cutoffs",
        "",
        f"Every test user with an event in the prior 60 days, scored as of the cutoff's day end ({len(cuts)} "
        f"cutoffs; users per cutoff {min(c['users'] for c in cuts):,} to {max(c['users'] for c in cuts):,}, "
        f"positive rate {min(c['positive_rate'] for c in cuts):.3f} to {max(c['positive_rate'] for c in cuts):.3f}). "
        "The mean's 95% interval resamples the users once for all cutoffs; each cutoff's own interval is in "
        "docs/models.json.",
        "",
        "| scorer | mean ROC-AUC [95% CI] | " + " | ".join(c["date"] for c in cuts) + " |",
        "|---|---:|" + "---:|" * len(cuts),
    ]
    for name in cuts[0]["roc_auc"]:
        label = f"{name} (champion)" if name == champion else name
        cells = " | ".join(f"{c['roc_auc'][name]['value']:.3f}" for c in cuts)
        lines.append(f"| {label} | {_ival(mean[name])} | {cells} |")
    lines.append("")
    for key, d in mean.items():
        if " - " in key:
            noise = " (within the noise)" if d["within_noise"] else ""
            lines.append(f"- {key}, mean ROC-AUC over the cutoffs: {_ival(d, sign='+')}{noise}.")
    lines += [f"- Target: {t}" for t in calendar_targets(task, cal)] + [""]
    return lines


def calendar_targets(task: str, cal: dict[str, Any]) -> list[str]:
    """Issue 14's targets at calendar cutoffs, each said met or missed from the means over the cutoffs.

    >>> m = {"x": {"value": 0.90}, "oracle": {"value": 0.91}, RECENCY: {"value": 0.89}, BGNBD: {"value": 0.8}}
    >>> calendar_targets("purchase", {"champion": "x", "mean": m})  # doctest: +NORMALIZE_WHITESPACE
    ['within 0.02 of the oracle: **met** (0.0100 behind).',
     'beats days-since-last-event by 0.0133 (two-thirds of the oracle margin over it, 0.0200): **missed** (0.0100).',
     'beats BG/NBD: **met** (+0.1000).']
    """
    mean, champion = cal["mean"], cal["champion"]
    out, best = [], mean[champion]["value"]

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**missed**"

    if ORACLE in mean:
        gap = mean[ORACLE]["value"] - best
        out.append(f"within 0.02 of the oracle: {verdict(gap <= 0.02)} ({gap:.4f} behind).")
        margin = mean[ORACLE]["value"] - mean[RECENCY]["value"]
        need = 0.02 if margin >= 0.03 else 2 * margin / 3
        why = "" if margin >= 0.03 else f" (two-thirds of the oracle margin over it, {margin:.4f})"
    else:
        need, why = 0.02, ""
    lead = best - mean[RECENCY]["value"]
    out.append(f"beats days-since-last-event by {need:.4f}{why}: {verdict(lead >= need)} ({lead:.4f}).")
    if task == "purchase" and BGNBD in mean:
        lead = best - mean[BGNBD]["value"]
        out.append(f"beats BG/NBD: {verdict(lead > 0)} ({lead:+.4f}).")
    return out
