#!/usr/bin/env python3
"""Offline checks of deploy/observability/, run by scripts/deploy-lint (inside .venv-lint).

  observability.py DIR [--schema-only]

- grafana-dashboard.json: valid JSON, a dashboard (title, uid, panels), every panel with a
  unique id, a title and at least one target with a PromQL `expr`.
- alerts.yml: the rule-file schema (groups with a name and rules; each rule an `alert` or a
  `record` with an `expr`; `for` a duration; labels and annotations maps of strings). promtool
  checks it too when installed (scripts/deploy-lint runs it; --schema-only is for when it is not).
- Every metric an expression uses exists in the code's registry: the `pub const NAME: &str =
  "metric"` lines of crates/*/src/metrics_names.rs (a histogram's `_bucket`, `_sum` and
  `_count` series count as its name), or is one Prometheus makes itself (`up`).

Prints one line per problem and exits 1 if there was any.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

PROBLEMS: list[str] = []
BUILTIN_METRICS = {"up", "scrape_duration_seconds"}
# PromQL words that are not metric names: functions, aggregations, operators, keywords.
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
    "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "rate", "irate", "increase", "delta", "idelta",
    "histogram_quantile", "abs", "absent", "absent_over_time", "ceil", "floor", "round",
    "clamp", "clamp_min", "clamp_max", "label_replace", "label_join", "vector", "scalar",
    "time", "timestamp", "sort", "sort_desc", "avg_over_time", "max_over_time",
    "min_over_time", "sum_over_time", "count_over_time", "last_over_time", "resets",
    "changes", "deriv", "predict_linear", "exp", "ln", "log2", "log10", "sqrt", "inf", "nan",
}
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def problem(msg: str) -> None:
    PROBLEMS.append(msg)
    print(f"  FAIL {msg}")


def registry(root: Path) -> set[str]:
    names: set[str] = set()
    for path in sorted(root.glob("crates/*/src/metrics_names.rs")):
        names.update(re.findall(r'pub const [A-Z_]+: &str = "([a-z_:][a-z0-9_:]*)";', path.read_text()))
    return names


def metrics_in(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (label matchers, grouping labels, ranges,
    strings and Grafana variables removed first)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', " ", expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\$\w+", " ", text)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text))
    return {w for w in words if w not in PROMQL_WORDS and not DURATION.match(w)}


def known(metric: str, names: set[str]) -> bool:
    if metric in names or metric in BUILTIN_METRICS:
        return True
    for suffix in ("_bucket", "_sum", "_count"):
        if metric.endswith(suffix) and metric[: -len(suffix)] in names:
            return True
    return False


def check_exprs(where: str, exprs: list[str], names: set[str]) -> None:
    for expr in exprs:
        for metric in sorted(metrics_in(expr)):
            if not known(metric, names):
                problem(f"{where}: `{metric}` is not a metric of crates/*/src/metrics_names.rs (in `{expr}`)")


def check_dashboard(path: Path, names: set[str]) -> None:
    try:
        dash = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        problem(f"{path}: not valid JSON: {e}")
        return
    for key in ("title", "uid", "panels"):
        if key not in dash:
            problem(f"{path}: no `{key}`")
    ids = set()
    for i, panel in enumerate(dash.get("panels", [])):
        where = f"{path}: panels[{i}] ({panel.get('title', '?')})"
        if not panel.get("title"):
            problem(f"{where}: no title")
        if panel.get("id") in ids:
            problem(f"{where}: id {panel.get('id')} used twice")
        ids.add(panel.get("id"))
        exprs = [t.get("expr") for t in panel.get("targets", [])]
        if not exprs or not all(isinstance(e, str) and e.strip() for e in exprs):
            problem(f"{where}: every panel needs targets with a PromQL `expr`")
            continue
        check_exprs(where, exprs, names)


def check_rules(path: Path, names: set[str]) -> None:
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        problem(f"{path}: not valid YAML: {e}")
        return
    groups = doc.get("groups") if isinstance(doc, dict) else None
    if not isinstance(groups, list) or not groups:
        problem(f"{path}: `groups` must be a non-empty list")
        return
    for g, group in enumerate(groups):
        where = f"{path}: groups[{g}]"
        if not isinstance(group, dict) or not isinstance(group.get("name"), str):
            problem(f"{where}: needs a `name`")
            continue
        rules = group.get("rules")
        if not isinstance(rules, list) or not rules:
            problem(f"{where}: `rules` must be a non-empty list")
            continue
        for r, rule in enumerate(rules):
            at = f"{where}.rules[{r}]"
            if not isinstance(rule, dict):
                problem(f"{at}: must be a map")
                continue
            if ("alert" in rule) == ("record" in rule):
                problem(f"{at}: needs exactly one of `alert` and `record`")
            unknown = set(rule) - {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
            if unknown:
                problem(f"{at}: unknown keys {sorted(unknown)}")
            if not isinstance(rule.get("expr"), str):
                problem(f"{at}: `expr` must be a PromQL string")
            else:
                check_exprs(at, [rule["expr"]], names)
            if "for" in rule and not DURATION.match(str(rule["for"])):
                problem(f"{at}: `for` must be a duration like 10m")
            for key in ("labels", "annotations"):
                value = rule.get(key, {})
                if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                    problem(f"{at}: `{key}` must map names to strings")


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__)
        return 2
    directory = Path(argv[1])
    names = registry(Path("."))
    if not names:
        problem("no metric names found in crates/*/src/metrics_names.rs")
    check_dashboard(directory / "grafana-dashboard.json", names)
    check_rules(directory / "alerts.yml", names)
    if PROBLEMS:
        print(f"observability: {len(PROBLEMS)} problem(s)")
        return 1
    print(f"  ok ({len(names)} metric names in the registry)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
