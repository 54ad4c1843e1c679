"""A service's error rate and latency from Prometheus, through its HTTP API's range query.

The PromQL is the operator's, written once per service in the config; Prometheus evaluates it (rate(), sums,
histogram_quantile) and TARS only reads the one series it must return. Plain urllib: the API is a GET with
JSON back, not worth a client library.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

from integrations.observability_reads import Point, ReadFailed, Series

# Prometheus refuses a range query of more points than this per series (its HTTP API's own limit).
MAX_POINTS = 11_000


class PrometheusReader:
    backend = "Prometheus"

    def __init__(
        self,
        url: str,
        error_rate: str,
        latency: str | None = None,
        *,
        bearer_token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        if bearer_token is not None and basic_auth is not None:
            raise ValueError("give Prometheus a bearer token or basic auth, not both")
        self.url = url.rstrip("/")
        self.error_rate_query = error_rate
        self.latency_query = latency
        self.timeout = timeout
        self._headers = {"Accept": "application/json"}
        if bearer_token is not None:
            self._headers["Authorization"] = f"Bearer {bearer_token}"
        elif basic_auth is not None:
            pair = base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
            self._headers["Authorization"] = f"Basic {pair}"

    @property
    def has_latency(self) -> bool:
        return self.latency_query is not None

    def error_rate(self, start: datetime, end: datetime, step: timedelta) -> Series:
        return self._range("error rate", self.error_rate_query, start, end, step)

    def latency(self, start: datetime, end: datetime, step: timedelta) -> Series:
        if self.latency_query is None:
            raise ReadFailed("no Prometheus latency query is configured for this service")
        return self._range("latency", self.latency_query, start, end, step)

    def _range(self, what: str, query: str, start: datetime, end: datetime, step: timedelta) -> Series:
        if start.tzinfo is None or end.tzinfo is None:
            # A naive datetime's timestamp() is taken as local time: silently the wrong window.
            raise ValueError("start and end must be timezone-aware")
        if step <= timedelta(0):
            raise ValueError("step must be positive")
        if (end - start) / step > MAX_POINTS:
            raise ReadFailed(
                f"Prometheus returns at most {MAX_POINTS} points per query: {end - start} at a "
                f"{step.total_seconds():g} s step is {int((end - start) / step)}; use a longer step"
            )
        params = urllib.parse.urlencode(
            {
                "query": query,
                "start": f"{start.timestamp():.3f}",
                "end": f"{end.timestamp():.3f}",
                "step": f"{step.total_seconds():.3f}",
            }
        )
        answer = self._get(f"/api/v1/query_range?{params}")
        data = answer.get("data")
        if not isinstance(data, dict) or data.get("resultType") != "matrix":
            raise ReadFailed("Prometheus answered a range query with something other than a matrix")
        result = data.get("result") or []
        if len(result) > 1:
            raise ReadFailed(
                f"the Prometheus {what} query returned {len(result)} series; it must return exactly one "
                f"(wrap it in sum(...))"
            )
        if not result:
            return ()
        points = []
        try:
            for at, text in result[0].get("values", []):
                value = float(text)
                # NaN is 0/0 over a step with no traffic; neither it nor ±Inf is a reading a verdict can use.
                if math.isfinite(value):
                    points.append(Point(at=datetime.fromtimestamp(float(at), UTC), value=value))
        except (TypeError, ValueError, AttributeError):
            raise ReadFailed("Prometheus answered a range query with malformed values") from None
        return tuple(points)

    def _get(self, path: str) -> dict[str, Any]:
        request = urllib.request.Request(self.url + path, headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            raise self._refused(error) from None
        except TimeoutError:
            raise self._timed_out() from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                raise self._timed_out() from None
            if isinstance(error.reason, ConnectionRefusedError):
                raise ReadFailed(f"Prometheus at {self._shown_url()} refused the connection") from None
            raise ReadFailed(
                f"Prometheus at {self._shown_url()} could not be reached: {error.reason}"
            ) from None
        except (OSError, http.client.HTTPException) as error:  # reset, dropped or cut short mid-answer
            raise ReadFailed(f"Prometheus at {self._shown_url()} failed mid-answer: {error!r}") from None
        try:
            answer = json.loads(body)
        except ValueError:
            raise ReadFailed(
                f"Prometheus at {self._shown_url()} answered something that is not JSON"
            ) from None
        if not isinstance(answer, dict) or answer.get("status") != "success":
            raise ReadFailed(f"Prometheus failed: {_error_of(answer) or 'no reason given'}")
        return answer

    def _timed_out(self) -> ReadFailed:
        return ReadFailed(f"Prometheus did not answer in {self.timeout:g} s")

    def _refused(self, error: urllib.error.HTTPError) -> ReadFailed:
        status = error.code
        if status in (401, 403):
            return ReadFailed(
                f"Prometheus authentication failed (HTTP {status}): check the token or basic auth TARS uses",
                status=status,
            )
        try:
            reason = _error_of(json.loads(error.read()))
        except (ValueError, OSError):
            reason = None  # a proxy's HTML page, say: nothing worth quoting
        if reason is None:
            return ReadFailed(f"Prometheus answered HTTP {status} {error.reason}", status=status)
        # 400 is a query that does not parse; 422 one that parses but cannot be evaluated.
        if status in (400, 422):
            return ReadFailed(f"Prometheus rejected the query: {reason}", status=status)
        return ReadFailed(f"Prometheus failed (HTTP {status}): {reason}", status=status)

    def _shown_url(self) -> str:
        # A URL may carry user:password@; messages go to an incident channel.
        parts = urllib.parse.urlsplit(self.url)
        return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def _error_of(answer: object) -> str | None:
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        return str(answer["error"])
    return None
