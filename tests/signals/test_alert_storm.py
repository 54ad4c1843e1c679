"""An alert storm must not drown the channel: a few cards per service, then one digest card gathering the rest."""

from __future__ import annotations

import json
import threading
from collections import Counter

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.signals.signal_records import Signal
from tests.signals.signal_helpers import open_declare_form, signal_count, triage_cards
from tests.signals.test_signal_intake import alert, from_alertmanager, group
from tests.signals.test_signal_intake import team as team
from tests.support import Workspace

DIGEST_AFTER = 5  # the default


def storm(team: Workspace, services: list[str], per_service: int, *, per_request: int = 10) -> None:
    alerts = [
        alert(f"Alert{n}", service=service, fingerprint=f"{service}-{n}", summary=f"instance {n} down")
        for service in services
        for n in range(per_service)
    ]
    batches = [alerts[i : i + per_request] for i in range(0, len(alerts), per_request)]
    statuses: list[int] = []

    def send(batch: list[dict[str, object]]) -> None:
        statuses.append(from_alertmanager(team, group(*batch))[0])

    threads = [threading.Thread(target=send, args=(batch,)) for batch in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * len(batches)


def test_a_storm_gets_a_few_cards_per_service_and_one_digest_each(team: Workspace) -> None:
    storm(team, ["payments", "checkout"], 100)
    assert signal_count(team) == 200 + 2  # every alert once, and one digest per service
    cards = triage_cards(team)
    per_service = Counter(card.text.split(":")[0] for card in cards)
    assert per_service == {"🔔 [firing] payments": DIGEST_AFTER + 1, "🔔 [firing] checkout": DIGEST_AFTER + 1}
    digests = [card for card in cards if "more alerts firing at once" in card.text]
    assert sorted(card.text for card in digests) == [
        f"🔔 [firing] checkout: {100 - DIGEST_AFTER} more alerts firing at once",
        f"🔔 [firing] payments: {100 - DIGEST_AFTER} more alerts firing at once",
    ]
    shown = json.dumps(digests[0].blocks, ensure_ascii=False)
    assert "• [firing] Alert" in shown and f"…and {100 - DIGEST_AFTER - 20} more" in shown
    # The same storm again is the same alerts: no new card.
    storm(team, ["payments"], 100)
    assert len(triage_cards(team)) == len(cards)


def test_declaring_from_the_digest_links_every_alert_it_gathers(team: Workspace) -> None:
    storm(team, ["payments"], 12)
    [digest] = [card for card in triage_cards(team) if "more alerts" in card.text]
    with Session(team.engine) as session:
        row = session.scalars(select(Signal).where(Signal.source == "digest")).one()
        members = row.member_ids
    assert len(members) == 12 - DIGEST_AFTER
    view = open_declare_form(team, digest, row.id, severity=2, user="U0BOB")
    assert team.client.submit_view(user_id="U0BOB", view_id=view.id, values={}).status == 200
    incident = team.latest_incident()
    with Session(team.engine) as session:
        linked = session.scalars(select(Signal).where(Signal.id.in_(members))).all()
    assert {(s.triage, s.incident_id) for s in linked} == {("declared", incident.id)}
    # Further alerts for payments now join the open incident instead of the channel.
    from_alertmanager(team, group(alert("Late", fingerprint="late-1")))
    assert any(e.kind == "signal_attached" for e in team.timeline(incident.id))
