"""The `.samples` files scripts/compare.sh writes while a bench runs, read
back for its capped and compressed reports: one header line
(`# name=... expect=... secs=...`), optional `# cgroup_*` lines, then rows
of time, server CPU ticks, server fds and bench CPU ticks."""
import os


def samples(out, name):
    """Header (name=..., expect=...), rows (t, server ticks, fds, bench ticks), cgroup cpu.stat before/after."""
    meta, rows, cg = {}, [], {}
    p = os.path.join(out, name + ".samples")
    for line in open(p) if os.path.exists(p) else []:
        if line.startswith("# name="):
            meta = dict(kv.split("=", 1) for kv in line[2:].split())
        elif line.startswith("# cgroup_"):
            tag, *kvs = line[2:].split()
            cg[tag] = {k: int(v) for k, v in (kv.split("=", 1) for kv in kvs) if v.isdigit()}
        elif line.strip() and not line.startswith("#"):
            t, st, fds, bt = line.split()
            rows.append((float(t), None if st == "NA" else int(st), int(fds),
                         None if bt == "NA" else int(bt)))
    return meta, rows, cg

def cpu_window(out, name):
    """Server and bench CPU-seconds per second over the steady window (as the main report's)."""
    meta, rows, _ = samples(out, name)
    if not rows or "expect" not in meta:
        return None, None
    hz = float(meta.get("clk_tck", 100))
    expect, secs = int(meta["expect"]), float(meta["secs"])
    base = int(meta.get("base_fds", rows[0][2]))
    ready = next((r[0] for r in rows if r[2] - base >= 0.98 * expect), None)
    if ready is None:
        top = max(r[2] for r in rows)
        ready = next(r[0] for r in rows if r[2] == top)
    lead, tail = (1.0, 0.5) if secs >= 8 else (0.5, 0.25)
    win = [r for r in rows if ready + lead <= r[0] <= ready + secs - tail and r[1] is not None]
    if len(win) < 2 or win[-1][0] <= win[0][0]:
        return None, None
    a, b = win[0], win[-1]
    dt = b[0] - a[0]
    bench = (b[3] - a[3]) / hz / dt if a[3] is not None and b[3] is not None else None
    return (b[1] - a[1]) / hz / dt, bench

