"""Log lines of a service's CloudWatch Logs groups that contain any of some terms, read with FilterLogEvents."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from integrations.aws_clients import ClientFactory
from integrations.cloudwatch_metrics import as_utc, read_call, read_clients
from integrations.observability_reads import LogLine, ReadFailed

# What the reader calls, for `tars policy aws`: FilterLogEvents can be limited to the catalog's log groups.
IAM_ACTIONS = {"scoped": ("logs:FilterLogEvents",)}

_MAX_PAGE = 10_000  # FilterLogEvents' largest `limit`


def quote(term: str) -> str:
    """A filter-pattern term matching `term` literally (CloudWatch is case-sensitive, and so is TARS).

    Quoting is never wrong and is required for anything but letters and digits: unquoted, `corr=abc-123`
    would be read as operators. Inside quotes, a backslash escapes '"' and itself (as the AWS CDK quotes).
    """
    return '"' + term.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _ms(moment: datetime) -> int:
    return int(as_utc(moment).timestamp() * 1000)


class CloudWatchLogReader:
    """A service's CloudWatch Logs groups (LogReader). `timeout` bounds each attempt of each call."""

    backend = "CloudWatch Logs"

    def __init__(
        self,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        client_factory: ClientFactory | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._region = region
        self._timeout = timeout
        self._clients = read_clients(
            "logs", endpoint_url=endpoint_url, client_factory=client_factory, timeout=timeout
        )

    def search(
        self, groups: Sequence[str], start: datetime, end: datetime, terms: Sequence[str], *, limit: int
    ) -> list[LogLine]:
        """Lines of `groups` between start and end (both inclusive) containing any of `terms`, oldest first,
        at most `limit` of them (the newest are dropped first).

        One FilterLogEvents search per group and term, each a quoted phrase, merged by event id: a single
        `?"a" ?"b"` OR pattern would save calls on AWS, but moto (what TARS is tested against) ignores
        patterns starting with '?' and returns every line, while a quoted phrase means the same thing to both.
        An empty term would match every line, which is never what a search for terms wants, so it is ignored.
        """
        wanted = list(dict.fromkeys(term for term in terms if term))
        if not groups or not wanted or limit < 1:
            return []
        client = self._clients.get(self._region)
        found: dict[tuple[str, str], tuple[int, int, str, str, LogLine]] = {}
        for rank, group in enumerate(dict.fromkeys(groups)):
            for term in wanted:
                for event in self._events(client, group, _ms(start), _ms(end), quote(term), limit):
                    stream, event_id = str(event.get("logStreamName", "")), str(event["eventId"])
                    at = int(event["timestamp"])
                    line = LogLine(
                        at=datetime.fromtimestamp(at / 1000, UTC),
                        group=group,
                        stream=stream,
                        message=str(event.get("message", "")).rstrip("\n"),
                    )
                    # A line matching several terms comes back from each of their searches.
                    found.setdefault((group, event_id), (at, rank, stream, event_id, line))
        # Equal timestamps keep a fixed order (groups as given, then stream and event id), so repeated
        # searches show the same lines in the same order.
        ordered = sorted(found.values(), key=lambda entry: entry[:4])
        return [entry[4] for entry in ordered[:limit]]

    def _events(
        self, client: Any, group: str, start_ms: int, end_ms: int, pattern: str, limit: int
    ) -> Iterator[dict[str, Any]]:
        """The group's matching events, oldest first, stopping once `limit` of them came back.

        FilterLogEvents returns events in ascending time order, so anything after the first `limit` would be
        dropped anyway; stopping there bounds a search for a term that is on every line of a busy service.
        """
        params: dict[str, Any] = {
            "logGroupName": group,
            "startTime": start_ms,
            "endTime": end_ms,
            "filterPattern": pattern,
            "limit": min(limit, _MAX_PAGE),
            # Ignored by AWS since 2019 (it always interleaves streams by time); moto sorts across streams
            # only when asked, and the early stop above relies on that order.
            "interleaved": True,
        }
        returned = 0
        while True:
            try:
                response = read_call(
                    client, self.backend, "FilterLogEvents", "filter_log_events", self._timeout, **params
                )
            except ReadFailed as error:
                if error.details.get("code") == "ResourceNotFoundException":
                    raise ReadFailed(
                        f"CloudWatch Logs: log group {group} does not exist", details=error.details
                    ) from error
                raise
            for event in response.get("events", []):
                yield event
                returned += 1
            token = response.get("nextToken")
            # Partly full or even empty pages do not end the search; only a missing nextToken does.
            if not token or returned >= limit:
                return
            params["nextToken"] = token
