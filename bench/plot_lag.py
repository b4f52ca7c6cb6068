#!/usr/bin/env python3
"""Plots lag_bench's kept rows (lag_bench --keep-csv DIR) with gnuplot.

  bench/plot_lag.py CSV_DIR OUT_DIR

Writes OUT_DIR/lag_cdf.png (the distribution of commit-to-visible lag of
every scenario, as a CDF on a log axis) and OUT_DIR/sustained.png (the
"max sustained" scenario over time: commits/s on the primary and rows/s
seen on the replica in 100 ms bins, and each bin's p99 lag). Each CSV row
is id, commit time, visible time (µs, CLOCK_REALTIME of the same machine).
Needs gnuplot (Debian: gnuplot-nox). A measurement tool, not a test.
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile


def read(path):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) == 3:
                rows.append((int(parts[0]), int(parts[1]), int(parts[2])))
    return rows


def label_of(path):
    # The file name is the scenario's label with every non-alphanumeric
    # character replaced by "_"; give back something readable.
    base = os.path.basename(path)[:-4]
    if base.startswith("max_sustained"):
        return "max sustained (<= 500 unacked)"
    if base.startswith("unthrottled_burst"):
        return "unthrottled burst"
    m = re.match(r"^(\d+)_s__(.*)$", base)  # "1000/s, repl_wait"
    if m:
        return f"{m.group(1)}/s, {m.group(2).replace('_', chr(92) + '_')}"
    return base.replace("_", " ")


def cdf_points(lags_ms, points=400):
    lags = sorted(lags_ms)
    n = len(lags)
    out = []
    step = max(1, n // points)
    for i in range(0, n, step):
        out.append((max(lags[i], 0.01), (i + 1) / n))
    out.append((max(lags[-1], 0.01), 1.0))
    return out


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    src, out = sys.argv[1], sys.argv[2]
    gnuplot = shutil.which("gnuplot")
    if not gnuplot:
        print("plot_lag: gnuplot is not installed (apt-get install gnuplot-nox)", file=sys.stderr)
        return 1
    csvs = sorted(glob.glob(os.path.join(src, "*.csv")))
    if not csvs:
        print(f"plot_lag: no CSV files in {src}", file=sys.stderr)
        return 1
    os.makedirs(out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="plot_lag.")
    try:
        series = []
        sustained = None
        for path in csvs:
            rows = read(path)
            if not rows:
                continue
            dat = os.path.join(tmp, f"cdf{len(series)}.dat")
            with open(dat, "w") as f:
                for x, y in cdf_points([(v - t) / 1000.0 for _, t, v in rows]):
                    f.write(f"{x:.4f} {y:.5f}\n")
            series.append((dat, label_of(path)))
            if os.path.basename(path).startswith("max_sustained"):
                sustained = rows
        plot = [
            "set terminal png size 900,520",
            f"set output '{os.path.join(out, 'lag_cdf.png')}'",
            "set title 'Commit-to-visible lag on a replica process (lag\\_bench)'",
            "set xlabel 'lag, ms (log scale)'",
            "set ylabel 'fraction of transactions seen'",
            "set logscale x",
            "set grid",
            "set key bottom right",
            "set yrange [0:1.02]",
            "plot " + ", ".join(f"'{d}' using 1:2 with lines lw 2 title '{t}'" for d, t in series),
        ]
        if sustained:
            t0 = min(t for _, t, _ in sustained)
            bins = {}
            for _, t, v in sustained:
                bins.setdefault((t - t0) // 100000, [0, 0, []])[0] += 1
                b = bins.setdefault((v - t0) // 100000, [0, 0, []])
                b[1] += 1
                bins[(t - t0) // 100000][2].append((v - t) / 1000.0)
            dat = os.path.join(tmp, "sustained.dat")
            with open(dat, "w") as f:
                for k in range(0, max(bins) + 1):  # empty bins too: a stall shows as 0
                    c, a, lags = bins.get(k, (0, 0, []))
                    lags.sort()
                    p99 = lags[min(len(lags) - 1, int(len(lags) * 0.99))] if lags else 0
                    f.write(f"{k / 10.0:.1f} {c * 10} {a * 10} {p99:.3f}\n")
            plot += [
                "reset",
                "set terminal png size 900,520",
                f"set output '{os.path.join(out, 'sustained.png')}'",
                "set title 'Max sustained rate (<= 500 unacknowledged): throughput and lag over time'",
                "set xlabel 'seconds'",
                "set ylabel 'transactions/s (100 ms bins)'",
                "set y2label 'lag p99 of the bin, ms'",
                "set ytics nomirror",
                "set y2tics",
                "set yrange [0:*]",
                "set y2range [0:*]",
                "set grid",
                "set key outside bottom center horizontal",
                f"plot '{dat}' using 1:2 with lines lw 2 title 'committed on the primary', "
                f"'{dat}' using 1:3 with lines lw 2 title 'seen on the replica', "
                f"'{dat}' using 1:4 axes x1y2 with lines lw 1 dt 2 title 'lag p99 (right axis)'",
            ]
        script = os.path.join(tmp, "plot.gp")
        with open(script, "w") as f:
            f.write("\n".join(plot) + "\n")
        subprocess.run([gnuplot, script], check=True, timeout=120)
        print(f"plot_lag: wrote {os.path.join(out, 'lag_cdf.png')}" +
              (f" and {os.path.join(out, 'sustained.png')}" if sustained else ""))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
