"""An IAM policy enforced in front of moto's server, with the resource ARN of every request.

moto can enforce IAM (INITIAL_NO_AUTH_ACTION_COUNT), but for ECS, SSM and Lambda it checks every request against
the resource "*", so a policy that names resources (the point of `tars policy aws`) denies everything there. This
gate speaks the AWS wire protocols TARS's boto3 clients use (JSON 1.1 for ECS and SSM, REST-JSON for Lambda),
works out each request's action and resource ARN the way AWS documents them, evaluates one identity policy
(Allow statements with `*` wildcards, implicit deny), and forwards what is allowed to moto unchanged. A denied
request gets AWS's AccessDenied answer for that protocol.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from fnmatch import fnmatchcase
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ACCOUNT = "123456789012"  # moto's default account
_TARGET_PREFIXES = {"AmazonEC2ContainerServiceV20141113": "ecs", "AmazonSSM": "ssm"}
_LAMBDA_CONFIGURATION = re.compile(r"^/2015-03-31/functions/([^/]+)/configuration$")


class IamGate:
    def __init__(self, upstream: str, policy: dict[str, Any], *, user: str = "tars") -> None:
        self.upstream = upstream.rstrip("/")
        self.policy = policy
        self.user = user
        self.denied: list[tuple[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.gate = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="iam-gate", daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> IamGate:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def authorize(self, action: str, resources: list[str]) -> str | None:
        """None when the policy allows `action` on every resource; else the first resource it does not."""
        for resource in resources:
            if not any(_allows(statement, action, resource) for statement in self.policy["Statement"]):
                return resource
        return None


def _allows(statement: dict[str, Any], action: str, resource: str) -> bool:
    actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
    resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
    return (
        statement.get("Effect") == "Allow"
        and any(fnmatchcase(action.lower(), pattern.lower()) for pattern in actions)
        and any(fnmatchcase(resource, pattern) for pattern in resources)
    )


def _region(headers: Any) -> str:
    match = re.search(r"Credential=[^/]+/\d+/([^/]+)/", headers.get("Authorization", ""))
    return match.group(1) if match else "us-east-1"


def _ecs_arns(operation: str, body: dict[str, Any], region: str) -> list[str]:
    def service_arn(cluster: str, service: str) -> str:
        if service.startswith("arn:"):
            return service
        cluster_name = cluster.rsplit("/", 1)[-1] if cluster else "default"
        return f"arn:aws:ecs:{region}:{ACCOUNT}:service/{cluster_name}/{service}"

    cluster = str(body.get("cluster", ""))
    if operation == "DescribeServices":
        return [service_arn(cluster, str(s)) for s in body.get("services", [])]
    if operation == "UpdateService":
        return [service_arn(cluster, str(body.get("service", "")))]
    return ["*"]  # task definition reads: AWS supports no resource for them


def _request_scope(method: str, path: str, headers: Any, body: bytes) -> tuple[str, list[str]] | None:
    """(action, resource ARNs) of a request, or None for one this gate does not know (it is denied)."""
    region = _region(headers)
    target = headers.get("X-Amz-Target", "")
    if target:
        prefix, _, operation = target.partition(".")
        service = _TARGET_PREFIXES.get(prefix)
        if service is None:
            return None
        document = json.loads(body or b"{}")
        if service == "ecs":
            return f"ecs:{operation}", _ecs_arns(operation, document, region)
        name = str(document.get("Name", ""))
        return f"ssm:{operation}", [f"arn:aws:ssm:{region}:{ACCOUNT}:parameter{name}"]
    match = _LAMBDA_CONFIGURATION.match(path.split("?", 1)[0])
    if match:
        operation = "GetFunctionConfiguration" if method == "GET" else "UpdateFunctionConfiguration"
        function = urllib.request.unquote(match.group(1)).rsplit(":", 1)[-1]
        return f"lambda:{operation}", [f"arn:aws:lambda:{region}:{ACCOUNT}:function:{function}"]
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _relay(self) -> None:
        gate: IamGate = self.server.gate  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        scope = _request_scope(self.command, self.path, self.headers, body)
        refused = "*" if scope is None else gate.authorize(*scope)
        if refused is not None:
            action = scope[0] if scope else "unknown"
            gate.denied.append((action, refused))
            self._deny(action, refused, lambda_rest=not self.headers.get("X-Amz-Target"))
            return
        request = urllib.request.Request(
            gate.upstream + self.path,
            data=body if body else None,
            method=self.command,
            headers={k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                self._send(answer.status, dict(answer.headers), answer.read())
        except urllib.error.HTTPError as failed:
            self._send(failed.code, dict(failed.headers), failed.read())

    def _deny(self, action: str, resource: str, *, lambda_rest: bool) -> None:
        gate: IamGate = self.server.gate  # type: ignore[attr-defined]
        message = (
            f"User: arn:aws:iam::{ACCOUNT}:user/{gate.user} is not authorized to perform: {action} "
            f"on resource: {resource} because no identity-based policy allows the {action} action"
        )
        if lambda_rest:
            payload = {"Type": "User", "Message": message}
            self._send(
                403,
                {"x-amzn-ErrorType": "AccessDeniedException", "Content-Type": "application/json"},
                json.dumps(payload).encode(),
            )
        else:
            payload = {"__type": "AccessDeniedException", "message": message}
            self._send(400, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(payload).encode())

    def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = _relay
