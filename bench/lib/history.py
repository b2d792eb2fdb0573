#!/usr/bin/env python3
"""One JSON line per scenario per run in bench/results/history.jsonl (read by bench/report).

Every record gets the run it belongs to (BENCH_RUN_ID, set once by bench/run so that all
of a run's scenarios share it; a fresh one otherwise), the date, the commit, the machine
and the versions of the load tools. As a command, for the shell scripts:

  history.py KEY=VALUE ...     values are JSON when they parse as JSON, strings otherwise
"""
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HISTORY = os.environ.get("BENCH_HISTORY", os.path.join(ROOT, "bench", "results", "history.jsonl"))


def _output(cmd):
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (done.stdout + done.stderr).strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def commit():
    return _output(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"]) or "unknown"


def run_id():
    if not os.environ.get("BENCH_RUN_ID"):
        os.environ["BENCH_RUN_ID"] = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + commit()
    return os.environ["BENCH_RUN_ID"]


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"host": platform.node(), "cores": os.cpu_count(), "cpu": cpu, "kernel": platform.release()}


def _first_line(text):
    """A tool's version line, cut to its first words (curl's goes on for a paragraph)."""
    return " ".join(text.splitlines()[0].split()[:4]) if text else "absent"


_TOOLS = None


def tools():
    """The load tools' and servers' versions, read once per process."""
    global _TOOLS
    if _TOOLS is None:
        pg_bin = _pg_bin()
        _TOOLS = {
            "h2load": _first_line(_output(["h2load", "--version"])),
            "wrk": _first_line(_output(["wrk", "-v"])),
            "pgbench": _first_line(_output([os.path.join(pg_bin, "pgbench"), "--version"])),
            "postgres": _first_line(_output([os.path.join(pg_bin, "postgres"), "--version"])),
            "redis-benchmark": _first_line(_output(["redis-benchmark", "--version"])),
            "redis": _first_line(_output(["redis-server", "--version"])),
            "curl": _first_line(_output(["curl", "--version"])),
        }
    return _TOOLS


def _pg_bin():
    base = "/usr/lib/postgresql"
    try:
        versions = sorted(os.listdir(base), key=lambda v: [int(p) for p in v.split(".") if p.isdigit()])
    except OSError:
        return ""
    return os.path.join(base, versions[-1], "bin") if versions else ""


def emit(record):
    """Appends one record (a dict) with the run's common fields in front of it."""
    line = {
        "run_id": run_id(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": commit(),
        "machine": machine(),
        "tools": tools(),
    }
    line.update(record)
    os.makedirs(os.path.dirname(HISTORY), exist_ok=True)
    with open(HISTORY, "a") as f:
        f.write(json.dumps(line) + "\n")
    return line


def _value(text):
    try:
        return json.loads(text)
    except ValueError:
        return text


if __name__ == "__main__":
    fields = {}
    for arg in sys.argv[1:]:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            sys.exit("history.py: arguments are KEY=VALUE")
        fields[key] = _value(value)
    emit(fields)
