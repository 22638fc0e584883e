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


def psql(command, schema, sql):
    text = f"SET search_path = {schema};\n{sql}"
    result = subprocess.run(command + ["-At", "-c", text], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{schema}: {result.stderr.strip()}\n{sql}")
    return result.stdout


def execution_ms(command, schema, sql):
    plan = json.loads(psql(command, schema, f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {sql}"))
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
    args = parser.parse_args()
    command = shlex.split(args.psql)
    queries = {f"Q{n}": (pathlib.Path(__file__).parent / f"queries/q{n:02}.sql").read_text() for n in range(1, 23)}

    same, pushed, medians = {}, {}, {}
    for name, sql in queries.items():
        answers = {source: psql(command, schema, sql) for source, schema in SOURCES.items()}
        same[name] = all(answers[s] == answers["heap"] for s in ("pg_kalam", "postgres_fdw"))
        plan = psql(command, "tpch", f"EXPLAIN (COSTS OFF) {sql}")
        pushed[name] = plan.startswith("Foreign Scan")
        times = {source: [] for source in SOURCES}
        for source, schema in SOURCES.items():
            execution_ms(command, schema, sql)  # warm-up
        for _ in range(args.rounds):
            for source, schema in SOURCES.items():
                times[source].append(execution_ms(command, schema, sql))
        medians[name] = {source: statistics.median(t) for source, t in times.items()}
        row = medians[name]
        print(f"  {name} done: heap {row['heap']:.1f} ms, pg_kalam {row['pg_kalam']:.1f} ms, "
              f"postgres_fdw {row['postgres_fdw']:.1f} ms", flush=True)

    print(f"\nTPC-H SF{args.sf}, median of {args.rounds} rounds ({args.profile} build)")
    print(f"{'query':6} {'same':5} {'pushed':7} {'heap_ms':>10} {'pg_kalam_ms':>12} {'pgfdw_ms':>10} "
          f"{'heap/kalam':>11} {'pgfdw/kalam':>12}")
    for name, row in medians.items():
        print(f"{name:6} {'yes' if same[name] else 'NO':5} {'yes' if pushed[name] else 'no':7} "
              f"{row['heap']:10.1f} {row['pg_kalam']:12.1f} {row['postgres_fdw']:10.1f} "
              f"{row['heap'] / row['pg_kalam']:10.2f}x {row['postgres_fdw'] / row['pg_kalam']:11.2f}x")
    geo = {s: math.exp(statistics.mean(math.log(r[s]) for r in medians.values())) for s in SOURCES}
    print(f"geometric mean: heap {geo['heap']:.1f} ms, pg_kalam {geo['pg_kalam']:.1f} ms, "
          f"postgres_fdw {geo['postgres_fdw']:.1f} ms; pg_kalam {geo['heap'] / geo['pg_kalam']:.2f}x faster "
          f"than heap, {geo['postgres_fdw'] / geo['pg_kalam']:.2f}x faster than postgres_fdw")
    print(f"identical results: {sum(same.values())}/22; one remote statement: {sum(pushed.values())}/22 "
          f"({', '.join(n for n, p in pushed.items() if p)})")
    chart(pathlib.Path(args.chart), medians, args.sf, args.rounds, args.profile)
    print(f"chart: {args.chart}")
    if not all(same.values()):
        sys.exit("some answers differ from the heap's")


if __name__ == "__main__":
    main()
