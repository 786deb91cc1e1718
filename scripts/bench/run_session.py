"""One benchmark session: our server and the python-socketio peer, each pinned to one core,
driven by socketio-bench pinned to the other, scenario by scenario; prints a table of the figures
with their ratios and writes every JSON result to artifacts/bench/.

Usage: run_session.py --server BIN --bench BIN [--quick] [--only swift|python] [--out DIR]
"""

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def start(cmd, pattern=r"listening on https?://[^:]+:(\d+)", timeout=30):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    port = []
    ready = threading.Event()

    def pump():
        for line in proc.stderr:
            m = re.search(pattern, line)
            if m and not port:
                port.append(int(m.group(1)))
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    if not ready.wait(timeout):
        proc.kill()
        raise RuntimeError(f"{cmd[0]} did not start")
    return proc, port[0]


def stop(proc):
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def bench(bench_bin, core, port, pid, scenario, *args):
    cmd = ["taskset", "-c", core, bench_bin, scenario, "--port", str(port), "--server-pid", str(pid),
           "--quiet", "--allow-errors", *map(str, args)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError(f"socketio-bench {scenario} printed no result: {out.stdout}\n{out.stderr}")
    result = json.loads(lines[-1])
    print(out.stdout.rsplit("\n{", 1)[0], flush=True)
    return result


def scenarios(quick):
    d = 3 if quick else 10
    idle = 2000 if quick else 10000
    return [
        ("connect", ["--concurrency", 50, "-d", d, "--warmup", 1]),
        ("idle", ["-c", idle, "-d", 3 if quick else 5, "--warmup", 1, "--concurrency", 200, "--setup-timeout", 300]),
        # As browsers and Node clients connect: offering permessage-deflate.
        ("connect-deflate", ["--deflate", "--concurrency", 50, "-d", d, "--warmup", 1]),
        # As the official client connects by default: long-polling first, then the upgrade.
        ("connect-upgrade", ["--transport", "polling", "--upgrade", "--concurrency", 50, "-d", d, "--warmup", 1]),
        # As on a busy server: the same connections while `idle` clients stay connected.
        ("connect-hold", ["--hold", idle, "--concurrency", 50, "-d", d, "--warmup", 1, "--setup-timeout", 300]),
        ("idle-deflate", ["--deflate", "-c", idle, "-d", 3 if quick else 5, "--warmup", 1, "--concurrency", 200,
                          "--setup-timeout", 300]),
        ("echo", ["-c", 50, "-w", 10, "-b", 64, "-d", d, "--warmup", 2]),
        ("fanout", ["-c", 1000, "--rate", 0, "-d", d, "--warmup", 2, "--setup-timeout", 120]),
        ("fanout-half", ["-c", 1000, "-d", d, "--warmup", 2, "--setup-timeout", 120]),
        ("polling", ["-c", 50, "-w", 10, "-b", 64, "-d", d, "--warmup", 2]),
    ]


def warm_up(name, cmd, bench_bin):
    """A throw-away connect run: the first scenario of a session used to come right after the
    release build (and its page-cache writeback) and measured 10-30 % above the same scenario
    later in the session."""
    proc, port = start(["taskset", "-c", "0", *cmd])
    try:
        print(f"== {name}: warm-up (connect -d 3, not counted)", flush=True)
        subprocess.run(["taskset", "-c", "1", bench_bin, "connect", "--port", str(port), "--concurrency", "50",
                        "-d", "3", "--warmup", "0", "--quiet", "--allow-errors"],
                       capture_output=True, text=True, timeout=120)
    finally:
        stop(proc)


def run_target(name, cmd, bench_bin, quick, out_dir):
    results = {}
    warm_up(name, cmd, bench_bin)
    for scenario, args in scenarios(quick):
        # A fresh server per scenario: RSS and CPU are not skewed by the previous one.
        proc, port = start(["taskset", "-c", "0", *cmd])
        try:
            time.sleep(0.5)
            real = scenario.split("-")[0]
            if scenario == "fanout-half":
                saturated = results.get("fanout", {}).get("broadcasts_per_s") or 0
                args = ["--rate", max(1.0, round(saturated / 2, 1))] + args
            print(f"== {name}: {scenario} {' '.join(map(str, args))}", flush=True)
            results[scenario] = bench(bench_bin, "1", port, proc.pid, real, *args)
        finally:
            stop(proc)
    with open(os.path.join(out_dir, f"{name}.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    return results


# (label, scenario, key, higher_is_better)
FIGURES = [
    ("server CPU µs per connection (connect)", "connect", "server_cpu_us_per_op", False),
    ("connections/s (connect)", "connect", "ops_per_s", True),
    ("server RSS KiB per idle WebSocket (idle)", "idle", "server_rss_kib_per_connection", False),
    ("server CPU µs per connection, permessage-deflate offered", "connect-deflate", "server_cpu_us_per_op", False),
    ("server RSS KiB per idle WebSocket, permessage-deflate", "idle-deflate", "server_rss_kib_per_connection", False),
    ("server CPU µs per connection, polling then upgrade", "connect-upgrade", "server_cpu_us_per_op", False),
    ("server CPU µs per connection, idle clients held", "connect-hold", "server_cpu_us_per_op", False),
    ("server CPU µs per acked echo (echo C=50 W=10 B=64)", "echo", "server_cpu_us_per_op", False),
    ("acked echoes/s", "echo", "ops_per_s", True),
    ("echo p99 µs", "echo", ("latency", "p99"), False),
    ("server CPU µs per room delivery (fanout 1000, saturating)", "fanout", "server_cpu_us_per_op", False),
    ("saturating broadcasts/s (fanout 1000)", "fanout", "broadcasts_per_s", True),
    ("fan-out p99 µs at half the saturating rate", "fanout-half", ("latency", "p99"), False),
    ("server CPU µs per room delivery at half rate", "fanout-half", "server_cpu_us_per_op", False),
    ("server CPU µs per acked echo over polling", "polling", "server_cpu_us_per_op", False),
    ("errors + missing deliveries (all scenarios)", None, None, False),
]


def figure(results, scenario, key):
    if scenario is None:
        return sum(r.get("errors", 0) + r.get("mismatches", 0) + (r.get("missing") or 0) for r in results.values())
    r = results.get(scenario, {})
    if isinstance(key, tuple):
        return (r.get(key[0]) or {}).get(key[1])
    return r.get(key)


def table(all_results):
    names = list(all_results)
    rows = [["figure", *names] + (["swift's advantage"] if len(names) == 2 else [])]
    for label, scenario, key, higher_is_better in FIGURES:
        values = [figure(all_results[n], scenario, key) for n in names]
        row = [label, *["—" if v is None else f"{v:g}" for v in values]]
        if len(names) == 2:
            ours, peer = values
            if scenario is None or not ours or not peer:
                row.append("—")
            else:
                row.append(f"{(ours / peer if higher_is_better else peer / ours):.1f}×")
        rows.append(row)
    if "swift" in all_results:
        r = all_results["swift"]
        rows.append(["polling / WebSocket CPU per echo (swift)",
                     f"{figure(r, 'polling', 'server_cpu_us_per_op') / figure(r, 'echo', 'server_cpu_us_per_op'):.2f}", ""]
                    + ([""] if len(names) == 2 else []))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths)) + " |" for row in rows]
    lines.insert(1, "| " + " | ".join("-" * w for w in widths) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--bench", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=["swift", "python"])
    parser.add_argument("--out", default="artifacts/bench")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    targets = {
        "swift": [args.server, "--profile", "bench", "--port", "0", "--log-level", "error"],
        "python": [sys.executable, os.path.join(HERE, "python_peer.py"), "--port", "0"],
    }
    all_results = {}
    for name, cmd in targets.items():
        if args.only and name != args.only:
            continue
        all_results[name] = run_target(name, cmd, args.bench, args.quick, args.out)
    print()
    print(table(all_results))
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(table(all_results) + "\n")


if __name__ == "__main__":
    main()
