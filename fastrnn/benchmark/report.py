"""Benchmark records -> a text table, a JSON file, a PNG plot."""
import json

from fastrnn.benchmark.cases import Case


def _fmt_time(us):
    return f"{us:,.2f}" if us < 100 else f"{us:,.1f}" if us < 10_000 else f"{us:,.0f}"


def table(records):
    """One line per engine x case: µs per step, throughput, fastrnn's speedup over the
    engine (engine time / fastrnn time), and the engine's max error against fastrnn."""
    cols = ["case", "threads", "engine", "µs/step", "±%", "seq/s", "GFLOP/s",
            "fastrnn ×", "max |err|"]
    rows = []
    for r in records:
        case = Case(**{k: r[k] for k in Case.__dataclass_fields__ if k in r})
        if "skipped" in r:
            rows.append([case.label(), str(r["threads"]), r["engine"], "skipped", "", "", "",
                         "", ""])
            continue
        err = f"{r['max_abs_err']:.1e}" + ("" if r["agrees"] else " MISMATCH")
        rows.append([case.label(), str(r["threads"]), r["engine"], _fmt_time(r["us_per_step"]),
                     f"{100 * r['spread']:.0f}", f"{r['seq_per_s']:,.0f}", f"{r['gflops']:.1f}",
                     "" if r["engine"] == "fastrnn" else f"{r['speedup']:.2f}",
                     "" if r["engine"] == "fastrnn" else err])
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c)
              for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(cols, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    last = None
    for row in rows:
        shown = row[:]
        if row[0] == last:
            shown[0] = ""
        last = row[0]
        lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                               for i, (c, w) in enumerate(zip(shown, widths))))
    return "\n".join(lines)


def skipped_note(records):
    """One line per peer that was skipped, with the reason."""
    seen = {}
    for r in records:
        if "skipped" in r:
            seen.setdefault(r["engine"], r["skipped"])
    return "\n".join(f"skipped {name}: {why}" for name, why in seen.items())


def write_json(path, records, environment):
    with open(path, "w") as f:
        json.dump({"environment": environment, "records": records}, f, indent=1)


def plot(path, records, environment):
    """µs per step against hidden size, one line per engine (and batch), log scale."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError(
            "--plot needs matplotlib: pip install matplotlib (or pip install 'fastrnn[bench]')"
        ) from None
    groups = {}
    for r in records:
        if "skipped" in r:
            continue
        key = (r["mode"], r["engine"], r["batch"], r["streaming"])
        groups.setdefault(key, []).append((r["hidden"], r["us_per_step"]))
    modes = sorted({k[0] for k in groups})
    colors = {"fastrnn": "C3", "numpy": "C7", "torch": "C0", "onnxruntime": "C2"}
    batches = sorted({k[2] for k in groups})
    markers = dict(zip(batches, "osD^vP*X"))
    fig, axes = plt.subplots(1, len(modes), figsize=(6.5 * len(modes), 5), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        for (m, engine, batch, streaming), pts in sorted(groups.items()):
            if m != mode:
                continue
            pts.sort()
            label = f"{engine} B={batch}" + (" step" if streaming else "")
            ax.plot([p[0] for p in pts], [p[1] for p in pts],
                    "-" if engine == "fastrnn" else "--", color=colors.get(engine, "C4"),
                    marker=markers.get(batch, "o"), lw=2.2 if engine == "fastrnn" else 1.2,
                    label=label)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("hidden size")
        ax.set_ylabel("µs per time step")
        ax.set_title(f"{mode}, {environment['threads']} thread(s)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    fig.suptitle(f"fastrnn bench — {environment['cpu']} — {environment['date'][:10]}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(records, peers=("numpy", "torch", "onnxruntime")):
    """A README table: one row per case, fastrnn's µs/step and each peer's µs/step with
    fastrnn's speedup over it."""
    by_case = {}
    for r in records:
        case = Case(**{k: r[k] for k in Case.__dataclass_fields__ if k in r})
        by_case.setdefault((case, r["threads"]), {})[r["engine"]] = r
    roof = any("roofline_fraction" in r for r in records)
    head = ["case", "threads", "fastrnn µs/step"] + [f"{p} µs/step (fastrnn ×)" for p in peers]
    if roof:
        head.append("floor µs/step (fastrnn's fraction of it)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (case, threads), rows in by_case.items():
        cells = [case.label(), str(threads), _fmt_time(rows["fastrnn"]["us_per_step"])]
        for p in peers:
            r = rows.get(p)
            if r is None or "skipped" in r:
                cells.append("—")
            else:
                cells.append(f"{_fmt_time(r['us_per_step'])} ({r['speedup']:.2f}×)")
        if roof:
            f = rows["fastrnn"]
            cells.append(f"{_fmt_time(f['floor_us_per_step'])} "
                         f"({100 * f['roofline_fraction']:.0f}%)"
                         if "roofline_fraction" in f else "—")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
