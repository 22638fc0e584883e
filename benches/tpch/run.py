"""Runs the 22 TPC-H queries on the heap, pg_kalam and postgres_fdw schemas (benches/tpch.sh
loads them), checks the answers against the heap's, times them and draws the chart."""

import argparse
import json
import math
import pathlib
import shlex
import statistics
import subprocess
import sys

SOURCES = {"heap": "tpch_heap", "pg_kalam": "tpch", "postgres_fdw": "tpch_pgfdw"}
COLORS = {"heap": "#888888", "pg_kalam": "#2a7ab0", "postgres_fdw": "#d08a2c"}


class TimedOut(Exception):
    """The statement ran past --timeout."""


def psql(command, schema, sql, timeout_ms=0):
    text = f"SET search_path = {schema};\nSET statement_timeout = {timeout_ms};\n{sql}"
    result = subprocess.run(command + ["-At", "-c", text], capture_output=True, text=True)
    if result.returncode != 0:
        if "statement timeout" in result.stderr:
            raise TimedOut()
        sys.exit(f"{schema}: {result.stderr.strip()}\n{sql}")
    return result.stdout


def execution_ms(command, schema, sql, timeout_ms=0):
    plan = json.loads(psql(command, schema, f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {sql}", timeout_ms))
    return plan[0]["Execution Time"]


def chart(path, medians, sf, rounds, profile):
    """Per-query bars (log scale), one per source."""
    width, height, left, bottom, top = 1100, 420, 60, 40, 40
    values = [v for row in medians.values() for v in row.values()]
    low, high = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    span = max(high - low, 1)
    plot_h = height - top - bottom
    step = (width - left - 20) / len(medians)
    bar = step / 4

    def y(ms):
        return top + plot_h * (1 - (math.log10(ms) - low) / span)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
           f'<text x="{left}" y="20" font-size="14">TPC-H SF{sf}: median execution time per query, ms (log scale; {rounds} rounds, {profile} build)</text>']
    for e in range(low, high + 1):
        out.append(f'<line x1="{left}" x2="{width - 20}" y1="{y(10 ** e):.1f}" y2="{y(10 ** e):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y(10 ** e) + 4:.1f}" text-anchor="end">{10 ** e:g}</text>')
    for i, (query, row) in enumerate(medians.items()):
        x0 = left + i * step + bar / 2
        for j, source in enumerate(SOURCES):
            top_y = y(row[source])
            out.append(f'<rect x="{x0 + j * bar:.1f}" y="{top_y:.1f}" width="{bar - 1:.1f}" '
                       f'height="{top + plot_h - top_y:.1f}" fill="{COLORS[source]}"><title>{query} {source}: {row[source]:.1f} ms</title></rect>')
        out.append(f'<text x="{x0 + 1.5 * bar:.1f}" y="{height - bottom + 14}" text-anchor="middle">{query}</text>')
    for j, source in enumerate(SOURCES):
        out.append(f'<rect x="{width - 330 + j * 105}" y="28" width="10" height="10" fill="{COLORS[source]}"/>')
        out.append(f'<text x="{width - 316 + j * 105}" y="37">{source}</text>')
    out.append("</svg>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--psql", required=True)
    parser.add_argument("--sf", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", default="release")
    parser.add_argument("--chart", required=True)
    parser.add_argument("--timeout", type=float, default=0, help="seconds per statement (0: none)")
    args = parser.parse_args()
    command = shlex.split(args.psql)
    queries = {f"Q{n}": (pathlib.Path(__file__).parent / f"queries/q{n:02}.sql").read_text() for n in range(1, 23)}

    timeout_ms = int(args.timeout * 1000)

    def show(ms):
        return f">{timeout_ms}" if ms is None else f"{ms:.1f}"

    def ratio(a, b):
        if a is None and b is None:
            return "n/a"
        if a is None:
            return f">{timeout_ms / b:.2f}x"
        if b is None:
            return f"<{a / timeout_ms:.2f}x"
        return f"{a / b:.2f}x"

    # A source that runs past the timeout is not run again for that query; its time is shown
    # as ">limit", and the query is left out of the geometric means.
    same, pushed, medians, rewritten = {}, {}, {}, set()
    header = (f"{'query':6} {'same':5} {'pushed':7} {'heap_ms':>10} {'pg_kalam_ms':>12} {'pgfdw_ms':>10} "
              f"{'heap/kalam':>11} {'pgfdw/kalam':>12}")
    print(header, flush=True)
    for name, sql in queries.items():
        answers = {}
        for source, schema in SOURCES.items():
            try:
                answers[source] = psql(command, schema, sql, timeout_ms)
            except TimedOut:
                answers[source] = None
        # A heap query past the timeout (Q17 and Q20 run their correlated subquery per row) is
        # checked against the heap's answer of its decorrelated form (checks/qNN.sql): the same
        # answer by SQL's rules, which the heap computes in seconds.
        check = pathlib.Path(__file__).parent / f"checks/q{int(name[1:]):02}.sql"
        if answers["heap"] is None and check.exists():
            try:
                answers["heap"] = psql(command, SOURCES["heap"], check.read_text(), timeout_ms)
                rewritten.add(name)
            except TimedOut:
                pass
        if answers["heap"] is None:
            same[name] = None
        else:
            same[name] = all(answers[s] in (None, answers["heap"]) for s in ("pg_kalam", "postgres_fdw"))
        plan = psql(command, "tpch", f"EXPLAIN (COSTS OFF) {sql}")
        pushed[name] = plan.startswith("Foreign Scan")
        # (A rewrite's answer stands for the heap's, not its time: the heap is not timed.)
        times = {source: [] for source in SOURCES
                 if answers[source] is not None and not (source == "heap" and name in rewritten)}
        for source in times:
            execution_ms(command, SOURCES[source], sql)  # warm-up
        for _ in range(args.rounds):
            for source in times:
                times[source].append(execution_ms(command, SOURCES[source], sql))
        row = {source: statistics.median(times[source]) if source in times else None for source in SOURCES}
        medians[name] = row
        verdict = {True: "yes", False: "NO", None: "n/a"}[same[name]] + ("*" if name in rewritten else "")
        print(f"{name:6} {verdict:5} {'yes' if pushed[name] else 'no':7} "
              f"{show(row['heap']):>10} {show(row['pg_kalam']):>12} {show(row['postgres_fdw']):>10} "
              f"{ratio(row['heap'], row['pg_kalam']):>11} {ratio(row['postgres_fdw'], row['pg_kalam']):>12}",
              flush=True)

    print(f"\nTPC-H SF{args.sf}, median of {args.rounds} rounds ({args.profile} build)")
    finished = {n: r for n, r in medians.items() if None not in r.values()}
    geo = {s: math.exp(statistics.mean(math.log(r[s]) for r in finished.values())) for s in SOURCES}
    print(f"geometric mean over the {len(finished)} queries every source finished: heap {geo['heap']:.1f} ms, "
          f"pg_kalam {geo['pg_kalam']:.1f} ms, postgres_fdw {geo['postgres_fdw']:.1f} ms; pg_kalam "
          f"{geo['heap'] / geo['pg_kalam']:.2f}x faster than heap, {geo['postgres_fdw'] / geo['pg_kalam']:.2f}x "
          f"faster than postgres_fdw")
    unfinished = sorted(set(medians) - set(finished), key=lambda n: int(n[1:]))
    if unfinished:
        print(f"past the {args.timeout:g} s timeout (left out of the means): {', '.join(unfinished)}")
    checked = [n for n, v in same.items() if v is not None]
    if rewritten:
        print(f"* checked against the heap's answer of the decorrelated form (checks/): "
              f"{', '.join(sorted(rewritten, key=lambda n: int(n[1:])))}")
    print(f"identical results: {sum(1 for n in checked if same[n])}/{len(checked)} checked; one remote "
          f"statement: {sum(pushed.values())}/22 ({', '.join(n for n, p in pushed.items() if p)})")
    limit = timeout_ms if timeout_ms else 1
    chart(pathlib.Path(args.chart),
          {n: {s: limit if v is None else v for s, v in r.items()} for n, r in medians.items()},
          args.sf, args.rounds, args.profile)
    print(f"chart: {args.chart}")
    results = pathlib.Path(args.chart).with_suffix(".json")
    results.write_text(json.dumps({"sf": args.sf, "rounds": args.rounds, "profile": args.profile,
                                   "timeout_s": args.timeout, "same": same, "pushed": pushed,
                                   "checked_by_rewrite": sorted(rewritten, key=lambda n: int(n[1:])),
                                   "median_ms": medians}, indent=1) + "\n")
    print(f"results: {results}")
    if any(v is False for v in same.values()):
        sys.exit("some answers differ from the heap's")


if __name__ == "__main__":
    main()
