"""Webhook ingest and end to end, measured with the shared peer harness.

    python -m bench.ingest_peers [--database postgresql|sqlite]... [--harness PATH] [--rounds N]

`../shared/bench-peers/run.sh` (its README) pins each target and its PostgreSQL to CPU 0 and
wrk to CPU 1, sends unique freshly signed ~2.1 KB `payment_intent.succeeded` events over 50
connections and counts what each target stored. For each database this runs it three times:

1. `bare project`: `reconciler serve` as a user runs it (an ingest-only web instance:
   `INBOX_WORKER_ENABLED=false SCHEDULER_ENABLED=false`, every other setting its default, the
   log at INFO) against a bare Starlette endpoint; rows counted in `inbox_events`.
2. `bare project --rates 1000,R`: both again at R = half the service's peak in (1), open loop:
   the p99 of the acknowledgement (goal <= 10 ms), beside the bare endpoint's at the same
   rate, which shows what the load generator and the machine allow; and the same at 1,000/s.
   The open-loop client is `bench/openloop.mjs` (Node, on the other CPU; `--client node`, the
   default): the harness's own `openloop.py` (Python, a task and a sleep a request) could
   not hold ~3,000/s even against the bare endpoint. The harness runs from a copy of its
   folder in which `openloop.py` hands its command line to the Node client, which takes the
   same arguments and prints the same result line; everything else is the harness's own.
   `--client harness` keeps the harness's client.
3. `sync-engine project`: the service with its inbox worker and the real `EventApplier`
   (`bench._peer_service`: a canned Stripe, the harness's 1,000 merchants made first), rows
   counted as payments booked, so the harness waits for the apply. The end-to-end rate is
   read from the inbox's own timestamps: the measured run's events over the time from the
   first arrival to the last one applied (goal >= 1.5x stripe-sync-engine, which stores in
   the request, in the same run).

PostgreSQL is the harness's (`{db_url}`, `postgres://...`); SQLite a file of our own. Every
figure is printed as a ratio to the baseline measured beside it; the exact harness command
lines are printed first. Results and logs: /tmp/peerbench/results/<time>/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HARNESS = ROOT.parent / "shared" / "bench-peers" / "run.sh"
SECRET = "whsec_peerbench0local0signing0secret00000"
URL = "http://127.0.0.1:8804/webhooks/stripe"
KINDS = ("postgresql", "sqlite")
LOW_RATE = 1000  # a second open-loop rate, one the harness's client drives cleanly here
HARNESS_PORTS = (55432, 8801, 8802, 8804)  # its PostgreSQL, bare, sync-engine, ours


@dataclass(frozen=True)
class Service:
    """How the harness starts and counts our service on one database."""

    kind: str
    workdir: Path

    @property
    def sqlite_file(self) -> Path:
        return self.workdir / "peerbench.db"

    def _url(self) -> str:
        return "{db_url}" if self.kind == "postgresql" else f"sqlite:///{self.sqlite_file}"

    def command(self, *, end_to_end: bool) -> str:
        python = shlex.quote(sys.executable)
        env = {
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": self._url(),
            "STRIPE_WEBHOOK_SECRETS": "{secret}",
            "SCHEDULER_ENABLED": "false",  # its jobs would call Stripe; none is here
        }
        steps = [f"{python} -m reconciler.cli migrate"]
        if end_to_end:
            env["INBOX_APPLIER"] = "bench._peer_service:ledger_applier"
            env["STRIPE_API_BASE"] = "http://127.0.0.1:9"  # never called: the canned Stripe
            steps.append(f"{python} -m bench._peer_service merchants --database-url {self._url()}")
        else:
            env["INBOX_WORKER_ENABLED"] = "false"
        exports = " ".join(f"{name}={value}" for name, value in env.items())
        clear = ""
        if self.kind == "sqlite":
            clear = f"rm -f {self.sqlite_file} {self.sqlite_file}-wal {self.sqlite_file}-shm; "
        serve = f"exec {python} -m reconciler.cli serve --port {{port}}"
        return f"{clear}export {exports}; " + " && ".join([*steps, serve])

    def counting(self, *, what: str, report: Path | None = None) -> list[str]:
        url = (
            '"$PEERBENCH_DB_URL"' if self.kind == "postgresql" else f"sqlite:///{self.sqlite_file}"
        )
        command = (
            f"PYTHONPATH={ROOT} {shlex.quote(sys.executable)} -m bench._peer_service count "
            f"--database-url {url} --what {what}"
        )
        if report is not None:
            command += f" --report {report}"
        return ["--project-count-cmd", command]


OPENLOOP_SHIM = """\
# Written by bench/ingest_peers.py: the fixed-rate runs use the project's Node client.
import os
import sys

os.execvp("node", ["node", {client!r}, *sys.argv[1:]])
"""


def with_node_client(harness_path: Path, folder: Path) -> Path:
    """A copy of the harness whose `openloop.py` runs `bench/openloop.mjs` (same arguments,
    same result line). Copied, not linked: the harness finds its files next to its own."""
    copy = folder / "bench-peers"
    shutil.copytree(harness_path.parent, copy, copy_function=shutil.copyfile)
    for directory in [copy, *(path for path in copy.rglob("*") if path.is_dir())]:
        directory.chmod(0o755)  # the shared folder is read-only, and copytree copies that
    openloop = copy / "openloop.py"
    openloop.write_text(OPENLOOP_SHIM.format(client=str(ROOT / "bench" / "openloop.mjs")))
    for script in ("run.sh", "setup.sh"):
        (copy / script).chmod(0o755)
    return copy / "run.sh"


def _wait_for_free_ports(timeout: float = 120.0) -> None:
    """The harness refuses to start while its ports are taken (its PostgreSQL of a run that
    is still stopping, or another session's run): wait for them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        taken = []
        for port in HARNESS_PORTS:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    taken.append(port)
        if not taken:
            return
        time.sleep(1.0)
    raise SystemExit(f"ports {taken} stayed in use for {timeout:.0f} s")


def harness(harness_path: Path, targets: list[str], service: Service, args: list[str]) -> dict:
    _wait_for_free_ports()
    argv = [str(harness_path), *targets, *args]
    print("$ " + shlex.join(argv), flush=True)
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    found = re.search(r"Logs and results.json: (\S+)", done.stdout)
    if found is None:
        raise SystemExit(f"the harness failed ({done.returncode}):\n{done.stderr[-3000:]}")
    print(done.stdout.split("\n\nTotal wall time")[0].split("\n\n", 1)[-1], flush=True)
    results: dict[str, Any] = json.loads((Path(found.group(1)) / "results.json").read_text())
    return {result["target"]: result for result in results["results"]}


def checked(result: dict) -> dict:
    if "wrk" not in result:
        raise SystemExit(f"{result['target']} failed: {result.get('error')}")
    stored, acked = result.get("stored"), result["acked_unique"]
    if stored is not None and stored < acked:
        raise SystemExit(f"{result['target']}: {acked - stored} acknowledged events not stored")
    return result


def one_database(kind: str, harness_path: Path, workdir: Path) -> dict[str, float]:
    service = Service(kind, workdir)
    project = ["--project-url", URL, "--project-secret", SECRET]
    ingest = [*project, "--project-cmd", service.command(end_to_end=False)]
    ingest += service.counting(what="inbox")
    print(f"\n== {kind}: ingest (the service as a user runs it) against a bare endpoint")
    run = harness(harness_path, ["bare", "project"], service, [*ingest, "--rates", ""])
    bare, ours = checked(run["bare"]), checked(run["project"])
    peak = ours["wrk"]["rps"]
    half = max(1, round(peak / 2))
    print(f"\n== {kind}: the acknowledgement at half that peak, {half}/s")
    rates = f"{LOW_RATE},{half}" if half > LOW_RATE else str(half)
    run = harness(harness_path, ["bare", "project"], service, [*ingest, "--rates", rates])
    *low, fixed = checked(run["project"])["fixed"]
    *bare_low, bare_fixed = checked(run["bare"])["fixed"]
    print(f"\n== {kind}: end to end (applied to the ledger) against stripe-sync-engine")
    report = workdir / f"e2e-{kind}.json"
    e2e = [*project, "--project-cmd", service.command(end_to_end=True)]
    e2e += service.counting(what="payments", report=report)
    run = harness(harness_path, ["sync-engine", "project"], service, [*e2e, "--rates", ""])
    sync, applied = checked(run["sync-engine"]), checked(run["project"])
    measured = json.loads(report.read_text())["measured"]
    if "end_to_end_per_s" not in measured:
        raise SystemExit(f"{kind}: not every event of the measured run was applied: {measured}")
    return {
        "bare": bare["wrk"]["rps"],
        "ingest": peak,
        "ingest_x_bare": peak / bare["wrk"]["rps"],
        "half_rate": half,
        "half_p99_ms": fixed["p99_ms"],
        "half_bare_p99_ms": bare_fixed["p99_ms"],
        "half_answered": fixed["achieved_rate"],
        "half_bad": fixed["non2xx"] + fixed["errors"] + fixed["abandoned"],
        "low_p99_ms": low[0]["p99_ms"] if low else float("nan"),
        "low_bare_p99_ms": bare_low[0]["p99_ms"] if bare_low else float("nan"),
        "sync_engine": sync["wrk"]["rps"],
        "e2e_acked": applied["wrk"]["rps"],
        "e2e": measured["end_to_end_per_s"],
        "e2e_x_sync_engine": measured["end_to_end_per_s"] / sync["wrk"]["rps"],
        "e2e_drained_after_s": measured["drained_after_s"],
    }


def summary(kind: str, rounds: list[dict[str, float]]) -> str:
    def median(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    each = lambda key, fmt: ", ".join(format(r[key], fmt) for r in rounds)  # noqa: E731
    return "\n".join(
        [
            f"{kind} ({len(rounds)} round(s); median, then each round):",
            f"  ingest x bare            {median('ingest_x_bare'):.3f}  "
            f"({each('ingest_x_bare', '.3f')})  goal >= 0.40; {each('ingest', ',.0f')} vs bare "
            f"{each('bare', ',.0f')} req/s",
            f"  p99 at half the peak     {median('half_p99_ms'):.1f} ms "
            f"({each('half_p99_ms', '.1f')})  goal <= 10 ms; bare at the same rate "
            f"{each('half_bare_p99_ms', '.1f')} ms; offered {each('half_rate', ',.0f')}/s, "
            f"answered {each('half_answered', ',.0f')}/s, bad {each('half_bad', ',.0f')}",
            f"  p99 at {LOW_RATE:,}/s           {median('low_p99_ms'):.1f} ms "
            f"({each('low_p99_ms', '.1f')}); bare {each('low_bare_p99_ms', '.1f')} ms",
            f"  end to end x sync-engine {median('e2e_x_sync_engine'):.2f}  "
            f"({each('e2e_x_sync_engine', '.2f')})  goal >= 1.5; applied {each('e2e', ',.0f')}/s"
            f" vs sync-engine {each('sync_engine', ',.0f')}/s; drained "
            f"{each('e2e_drained_after_s', '.2f')} s after the last arrival",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", choices=KINDS, action="append")
    parser.add_argument("--harness", type=Path, default=HARNESS, help="run.sh of bench-peers")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument(
        "--client",
        choices=("node", "harness"),
        default="node",
        help="the open-loop client of the fixed-rate runs: bench/openloop.mjs, or the"
        " harness's openloop.py",
    )
    args = parser.parse_args()
    if not args.harness.exists():
        raise SystemExit(f"no harness at {args.harness} (--harness PATH)")
    if args.client == "node" and shutil.which("node") is None:
        raise SystemExit("--client node needs node on PATH (or use --client harness)")
    client = "bench/openloop.mjs (Node)" if args.client == "node" else "the harness's openloop.py"
    print(f"{os.cpu_count()} CPUs; harness {args.harness}; open-loop client {client}")
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="ingest-peers-") as folder:
        run_sh = args.harness
        if args.client == "node":
            run_sh = with_node_client(args.harness, Path(folder))
        for _ in range(args.rounds):
            for kind in args.database or KINDS:
                results.setdefault(kind, []).append(one_database(kind, run_sh, Path(folder)))
    print()
    for kind, rounds in results.items():
        print(summary(kind, rounds))


if __name__ == "__main__":
    main()
