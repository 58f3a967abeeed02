"""``--plot FILE.png``: one panel per workload, one bar per engine column,
each bar its median throughput (seconds for a workload timed once, such as
compact_range), with the first column's ratio to each other engine written
above that engine's bar (above 1: the first is faster).

Knows matplotlib (Agg backend, imported when a plot is drawn) and the
result dicts; nothing of the engines.
"""
import math

from .report import TIMED_ONCE, medians, summary_rows

PANEL_COLUMNS = 4


def plot(results, path, title):
    """Draw the run's results into the PNG file ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    from matplotlib import pyplot
    from matplotlib.ticker import FuncFormatter

    results = summary_rows(results)
    by = medians(results)
    workloads = list(dict.fromkeys(r["workload"] for r in results))
    engines = list(dict.fromkeys(r["engine"] for r in results))
    colours = {e: pyplot.get_cmap("tab10")(n % 10) for n, e in enumerate(engines)}
    columns = min(PANEL_COLUMNS, len(workloads))
    rows = math.ceil(len(workloads) / columns)
    figure, axes = pyplot.subplots(rows, columns, figsize=(3.4 * columns, 2.9 * rows + 0.6), squeeze=False)
    for ax, workload in zip(axes.flat, workloads):
        timed_once = workload.split()[0] in TIMED_ONCE
        heights = []
        for engine in engines:
            rate = (by.get((workload, engine)) or {}).get("ops_per_sec")
            heights.append((1 / rate if timed_once else rate) if rate else 0.0)
        bars = ax.bar(range(len(engines)), heights, color=[colours[e] for e in engines])
        ax.set_title(workload, fontsize=10)
        ax.set_ylabel("seconds (lower is better)" if timed_once else "ops/s", fontsize=8)
        ax.set_xticks(range(len(engines)))
        ax.set_xticklabels(engines, fontsize=8, rotation=20)
        ax.tick_params(axis="y", labelsize=7)
        if not timed_once:
            ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: _short(value)))
        reference = heights[0]
        for bar, height in zip(bars, heights):
            if height and reference:
                ratio = (height / reference) if timed_once else (reference / height)
                label = f"{height:.2f} s" if timed_once else _short(height)
                ax.annotate(f"{label}\n{engines[0]} {ratio:.2f}x" if bar is not bars[0] else label,
                            (bar.get_x() + bar.get_width() / 2, height), ha="center", va="bottom", fontsize=7)
        ax.margins(y=0.3)
    for ax in list(axes.flat)[len(workloads):]:
        ax.set_visible(False)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    pyplot.close(figure)


def _short(rate):
    for scale, unit in ((1e6, "M"), (1e3, "k")):
        if rate >= scale:
            return f"{rate / scale:.1f}{unit}"
    return f"{rate:.0f}"
