"""An alert storm against `tars serve`: how fast the signal endpoint answers, and how many cards reach Slack.

500 distinct firing alerts arrive in 10 seconds (one Alertmanager webhook request each, 50 a second, sent on a
fixed schedule by 10 client threads), spread over the catalog's services. The same requests go to the floor, a
bare endpoint served exactly as TARS is (bench/bare_bolt_app.py: waitress, 8 threads) that reads and parses
the body and keeps nothing. Latency is measured by the client, from sending a request to reading its answer.

After the storm, TARS delivers what it queued to a Slack emulator that enforces Slack's published rate limits,
and the triage cards in the channel are counted: at most one per fingerprint, and past `signals.digest_after`
(5) firing alerts per service, one digest card instead of more.

Targets: TARS p99 under 100 ms, every answer 200, cards per service at most digest_after + 1, no card twice.

Usage: .venv/bin/python bench/alert_storm.py [--postgres-url URL] [--alerts 500] [--seconds 10]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from ack_latency import (
    SIGNING_SECRET,
    Server,
    catalog_file,
    machine,
    server_process,
    throwaway_database,
    verdict,
)

from sandbox.emulator import SlackEmulator

TOKEN = "bench-alertmanager-token"
BOT_TOKEN = "xoxb-bench-token"
CHANNEL = "C0INCIDENTS"
SERVICES = {
    "payments": "U0PAYONCALL",
    "checkout": "U0CHKONCALL",
    "search": "U0SRCHONCALL",
    "identity": "U0IDONCALL",
}
CLIENTS = 10
DIGEST_AFTER = 5
P99_MAX_MS = 100.0


def bodies(count: int) -> list[bytes]:
    services = list(SERVICES)
    return [
        json.dumps(
            {
                "version": "4",
                "status": "firing",
                "receiver": "tars",
                "groupLabels": {"alertname": f"InstanceDown{n}"},
                "commonLabels": {},
                "commonAnnotations": {},
                "externalURL": "http://alertmanager.bench",
                "alerts": [
                    {
                        "status": "firing",
                        "labels": {
                            "alertname": f"InstanceDown{n}",
                            "service": services[n % len(services)],
                            "severity": "critical",
                            "instance": f"10.0.{n // 250}.{n % 250}:9100",
                        },
                        "annotations": {"summary": f"instance {n} stopped answering scrapes"},
                        "startsAt": "2026-12-01T09:00:00Z",
                        "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "http://prometheus.bench/graph",
                        "fingerprint": f"{n:016x}",
                    }
                ],
            }
        ).encode()
        for n in range(count)
    ]


def storm(server: Server, requests: list[bytes], seconds: float) -> tuple[list[float], Counter[int]]:
    """Send request i at i * seconds / len(requests) after the start, whatever the answers' pace."""
    interval = seconds / len(requests)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    start = time.perf_counter() + 0.2

    def client(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
        for index in range(offset, len(requests), CLIENTS):
            due = start + index * interval
            time.sleep(max(0.0, due - time.perf_counter()))
            began = time.perf_counter()
            try:
                connection.request("POST", "/signals/alertmanager", body=requests[index], headers=headers)
                answer = connection.getresponse()
                answer.read()
                status = answer.status
            except (OSError, http.client.HTTPException):
                status = 0
                connection.close()
            elapsed = (time.perf_counter() - began) * 1000
            with lock:
                latencies.append(elapsed)
                statuses[status] += 1
        connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, statuses


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100, method="inclusive")[98]


def triage_cards(slack: SlackEmulator) -> list[str]:
    return [m.text for m in slack.channel_messages(CHANNEL) if m.text.startswith("🔔")]


def wait_for_cards(slack: SlackEmulator, tars: Server, timeout: float = 180.0) -> list[str]:
    """Until TARS has posted what the storm queued: the card count stops changing and TARS is idle."""
    deadline = time.monotonic() + timeout
    tars.wait_idle(timeout=timeout)
    while True:
        before = len(triage_cards(slack))
        tars.wait_idle(timeout=max(1.0, deadline - time.monotonic()))
        if len(triage_cards(slack)) == before or time.monotonic() > deadline:
            return triage_cards(slack)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--postgres-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--alerts", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    requests = bodies(args.alerts)
    slack = SlackEmulator(bot_token=BOT_TOKEN, rate_limits=True).start()
    for user in SERVICES.values():
        slack.add_user(user, user[3:].lower())
    print(
        f"alert_storm: {args.alerts} distinct firing alerts in {args.seconds:g} s, one Alertmanager request each,"
        f" {CLIENTS} clients; {machine()}",
        flush=True,
    )
    try:
        with (
            throwaway_database(args.postgres_url) as database_url,
            tempfile.TemporaryDirectory(prefix="tars-bench-") as scratch,
        ):
            log_dir = Path(scratch)
            catalog = catalog_file(log_dir, SERVICES)
            env = {
                "SLACK_BOT_TOKEN": BOT_TOKEN,
                "SLACK_SIGNING_SECRET": SIGNING_SECRET,
                "SLACK_API_URL": slack.base_url,
                "TARS_ALERTMANAGER_TOKEN": TOKEN,
            }
            floor_argv = [sys.executable, str(Path(__file__).resolve().parent / "bare_bolt_app.py")]
            with server_process("floor", floor_argv, env, log_dir) as floor:
                storm(floor, requests[:50], 1.0)  # warm-up
                floor_latencies, floor_statuses = storm(floor, requests, args.seconds)
            tars_env = {
                **env,
                "DATABASE_URL": database_url,
                "TARS_CONFIG": str(catalog),
                "TARS_INCIDENTS_CHANNEL": CHANNEL,
            }
            tars_argv = [sys.executable, "-m", "bot.cli", "serve"]
            with server_process("TARS", tars_argv, tars_env, log_dir) as tars:
                tars_latencies, tars_statuses = storm(tars, requests, args.seconds)
                cards = wait_for_cards(slack, tars)
    finally:
        slack.stop()

    print()
    print(f"{'server':<6} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'non-200':>8}")
    for label, latencies, statuses in (
        ("floor", floor_latencies, floor_statuses),
        ("TARS", tars_latencies, tars_statuses),
    ):
        print(
            f"{label:<6} {len(latencies):>8} {statistics.median(latencies):>8.1f} {p99(latencies):>8.1f}"
            f" {max(latencies):>8.1f} {len(latencies) - statuses[200]:>8}"
        )
    per_service = Counter(card.split(":")[0].removeprefix("🔔 [firing] ") for card in cards)
    digests = sum("more alerts firing at once" in card for card in cards)
    tars_p99 = p99(tars_latencies)
    ratio = tars_p99 / p99(floor_latencies)
    checks = {
        f"TARS p99 {tars_p99:.1f} ms < {P99_MAX_MS:g} ms (floor ratio {ratio:.1f}x)": tars_p99 < P99_MAX_MS,
        f"non-200 answers: {len(tars_latencies) - tars_statuses[200]}": tars_statuses[200]
        == len(tars_latencies),
        f"triage cards: {len(cards)} for {args.alerts} alerts ({digests} digests);"
        f" per service {dict(sorted(per_service.items()))}, at most {DIGEST_AFTER + 1} each": all(
            count <= DIGEST_AFTER + 1 for count in per_service.values()
        ),
        f"no card twice: {len(cards) - len(set(cards))} repeated": len(cards) == len(set(cards)),
    }
    print()
    for label, ok in checks.items():
        print(f"{verdict(ok)}  {label}")
    print(f"overall: {verdict(all(checks.values()))} ({machine()})")


if __name__ == "__main__":
    main()
