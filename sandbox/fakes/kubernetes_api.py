"""A fake Kubernetes API server for the Deployment / ReplicaSet slice of apps/v1.

TARS rolls back and scales Deployments through the unmodified official ``kubernetes`` client, so this
fake speaks the real wire protocol (paths, content types, ``Status`` errors, resourceVersion and
generation bookkeeping) and embeds a small synchronous deployment controller that mirrors
kube-controller-manager's revision handling closely enough that a reimplementation of
``kubectl rollout undo`` behaves the same here as against a real cluster.

The server itself is standard-library only; ``kubernetes`` is imported lazily by ``api_client()``.

Deliberate simplifications (documented so tests don't rely on them by accident):

* Namespaces exist implicitly; there is no auth, no admission, no pods.
* The controller runs synchronously before a write's response is sent, so a response already
  reflects the controller's work (a real apiserver answers before the controller reacts).
* Orphaned ReplicaSets that match a selector are never adopted (the real controller would adopt
  them); this keeps "foreign" ReplicaSets foreign for tests that check undo ignores them.
* Server-side apply (``application/apply-patch+yaml``) is rejected with 415.
* Writes through the ``/status`` subresource do not trigger the controller, otherwise the
  controller would immediately overwrite the status the test just wrote.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import hashlib
import json
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

if TYPE_CHECKING:
    import kubernetes.client

__all__ = ["FakeKubernetes", "KubeApiError", "RecordedRequest"]

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
POD_TEMPLATE_HASH = "pod-template-hash"

# The real controller never copies its own bookkeeping annotations from a Deployment onto its
# ReplicaSets (k8s.io/kubernetes/pkg/controller/deployment/util skipCopyAnnotation).
_ANNOTATIONS_NOT_COPIED = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        MAX_REPLICAS,
        "deprecated.deployment.rollback.to",
    }
)

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH_PREFIX = "application/apply-patch"

# Same alphabet as k8s.io/apimachinery/pkg/util/rand.SafeEncodeString: no vowels (no accidental
# words) and no look-alike characters.
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"

# Strategic merge patch merges these lists element-wise by the given key (from the Go struct
# tags patchMergeKey of core/v1 and apps/v1); every other list is replaced wholesale.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "env": "name",
    "imagePullSecrets": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "ports": "containerPort",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
}

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------


class KubeApiError(Exception):
    """An API error; rendered on the wire as a ``kind: Status`` object with the matching code."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code} {reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def to_status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            status["details"] = self.details
        return status


def _not_found(resource: str, name: str) -> KubeApiError:
    return KubeApiError(
        404,
        "NotFound",
        f'{resource}.apps "{name}" not found',
        {"name": name, "group": "apps", "kind": resource},
    )


def _already_exists(resource: str, name: str) -> KubeApiError:
    return KubeApiError(
        409,
        "AlreadyExists",
        f'{resource}.apps "{name}" already exists',
        {"name": name, "group": "apps", "kind": resource},
    )


def _conflict(resource: str, name: str, why: str | None = None) -> KubeApiError:
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return KubeApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {resource}.apps "{name}": {why}',
        {"name": name, "group": "apps", "kind": resource},
    )


def _bad_request(message: str) -> KubeApiError:
    return KubeApiError(400, "BadRequest", message)


def _invalid(kind: str, name: str, causes: list[tuple[str, str, str]]) -> KubeApiError:
    """causes: (reason, field, message) triples, e.g. ("FieldValueInvalid", "spec.replicas", "...")."""
    rendered = [f"{field}: {message}" for _, field, message in causes]
    summary = rendered[0] if len(rendered) == 1 else "[" + ", ".join(rendered) + "]"
    return KubeApiError(
        422,
        "Invalid",
        f'{kind}.apps "{name}" is invalid: {summary}',
        {
            "name": name,
            "group": "apps",
            "kind": kind,
            "causes": [
                {"reason": reason, "message": message, "field": field} for reason, field, message in causes
            ],
        },
    )


def _unprocessable(message: str) -> KubeApiError:
    # The apiserver reports json-patch application failures this way (NewGenericServerResponse 422).
    return KubeApiError(
        422,
        "Invalid",
        message,
        {"causes": [{"reason": "UnexpectedServerResponse", "message": message}]},
    )


# --------------------------------------------------------------------------------------------
# Label and field selectors
# --------------------------------------------------------------------------------------------

Requirement = tuple[str, str, tuple[str, ...]]

_SELECTOR_TOKEN = re.compile(r"\s*(==|!=|=|!|\(|\)|,|<|>|[^\s=!(),<>]+)")
_SELECTOR_SYMBOLS = frozenset({"==", "!=", "=", "!", "(", ")", ",", "<", ">"})


def parse_label_selector(text: str) -> list[Requirement]:
    """Parse the string form of a label selector (k8s.io/apimachinery/pkg/labels.Parse)."""
    tokens: list[str] = []
    pos = 0
    while text[pos:].strip():
        match = _SELECTOR_TOKEN.match(text, pos)
        if match is None:
            raise _bad_request(f"unable to parse requirement: invalid label selector {text!r}")
        tokens.append(match.group(1))
        pos = match.end()

    reqs: list[Requirement] = []
    i = 0

    def fail(detail: str) -> KubeApiError:
        return _bad_request(f"unable to parse requirement: {detail} in label selector {text!r}")

    def word(at: int, what: str) -> str:
        if at >= len(tokens) or tokens[at] in _SELECTOR_SYMBOLS:
            found = tokens[at] if at < len(tokens) else ""
            raise fail(f"found '{found}', expected: {what}")
        return tokens[at]

    def check_key(key: str) -> str:
        prefix, _, name = key.rpartition("/")
        if (
            (prefix and not _DNS_SUBDOMAIN.fullmatch(prefix))
            or not _LABEL_NAME.fullmatch(name)
            or len(name) > 63
        ):
            raise fail(f"invalid label key {key!r}")
        return key

    def check_value(value: str) -> str:
        if len(value) > 63 or not _LABEL_VALUE.fullmatch(value):
            raise fail(f"invalid label value {value!r}")
        return value

    while i < len(tokens):
        if tokens[i] == "!":
            reqs.append((check_key(word(i + 1, "identifier")), "!", ()))
            i += 2
        else:
            key = check_key(word(i, "identifier"))
            i += 1
            op = tokens[i] if i < len(tokens) else None
            if op is None or op == ",":
                reqs.append((key, "exists", ()))
            elif op in ("=", "==", "!="):
                i += 1
                # "k=" is legal and selects the empty value.
                value = "" if i >= len(tokens) or tokens[i] == "," else check_value(word(i, "value"))
                if value:
                    i += 1
                reqs.append((key, "!=" if op == "!=" else "=", (value,)))
            elif op in ("in", "notin"):
                i += 1
                if i >= len(tokens) or tokens[i] != "(":
                    raise fail("expected '('")
                i += 1
                values: list[str] = []
                expect_value = True
                while True:
                    if i >= len(tokens):
                        raise fail("expected ')'")
                    tok = tokens[i]
                    if tok == ")":
                        if expect_value and values:
                            values.append("")
                        i += 1
                        break
                    if tok == ",":
                        if expect_value:
                            values.append("")
                        expect_value = True
                    else:
                        if not expect_value:
                            raise fail("expected ',' or ')'")
                        values.append(check_value(word(i, "value")))
                        expect_value = False
                    i += 1
                reqs.append((key, op, tuple(values)))
            elif op in ("<", ">"):
                i += 1
                bound = word(i, "integer")
                if not re.fullmatch(r"-?\d+", bound):
                    raise fail(f"invalid integer value {bound!r}")
                i += 1
                reqs.append((key, "gt" if op == ">" else "lt", (bound,)))
            else:
                raise fail(f"found '{op}', expected: '=', '!=', '==', 'in', notin'")
        if i < len(tokens):
            if tokens[i] != ",":
                raise fail(f"found '{tokens[i]}', expected: ','")
            i += 1
            if i >= len(tokens):
                raise fail("found '', expected: identifier")
    return reqs


def labels_match(reqs: list[Requirement], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    for key, op, values in reqs:
        present = key in labels
        value = labels.get(key)
        if op == "=":
            ok = present and value == values[0]
        elif op == "!=":
            ok = value != values[0]
        elif op == "in":
            ok = present and value in values
        elif op == "notin":
            ok = value not in values
        elif op == "exists":
            ok = present
        elif op == "!":
            ok = not present
        else:
            try:
                number = int(value) if value is not None else None
            except ValueError:
                number = None
            bound = int(values[0])
            ok = number is not None and (number > bound if op == "gt" else number < bound)
        if not ok:
            return False
    return True


def selector_object_matches(selector: dict[str, Any] | None, labels: dict[str, str] | None) -> bool:
    """Match a metav1.LabelSelector object (matchLabels + matchExpressions)."""
    selector = selector or {}
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and key in labels and labels[key] in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def selector_to_string(selector: dict[str, Any] | None) -> str:
    """metav1.LabelSelectorAsSelector(...).String(): requirements sorted by key."""
    selector = selector or {}
    parts: list[tuple[str, str]] = []
    for key, value in (selector.get("matchLabels") or {}).items():
        parts.append((key, f"{key}={value}"))
    for expr in selector.get("matchExpressions") or []:
        key, op = expr.get("key", ""), expr.get("operator")
        values = ",".join(sorted(expr.get("values") or []))
        rendered = {
            "In": f"{key} in ({values})",
            "NotIn": f"{key} notin ({values})",
            "Exists": key,
            "DoesNotExist": f"!{key}",
        }.get(op, key)
        parts.append((key, rendered))
    return ",".join(text for _, text in sorted(parts))


_FIELD_SELECTOR_PART = re.compile(r"\s*([A-Za-z.]+)\s*(==|!=|=)\s*([^,]*?)\s*")


def parse_field_selector(text: str) -> list[tuple[str, str, str]]:
    reqs: list[tuple[str, str, str]] = []
    for part in text.split(","):
        if not part.strip():
            continue
        match = _FIELD_SELECTOR_PART.fullmatch(part)
        if match is None:
            raise _bad_request(f"invalid field selector: {part!r}")
        field, op, value = match.groups()
        if field not in ("metadata.name", "metadata.namespace"):
            raise _bad_request(
                f'"{field}" is not a known field selector: only "metadata.name", "metadata.namespace"'
            )
        reqs.append((field, "!=" if op == "!=" else "=", value))
    return reqs


def _fields_match(reqs: list[tuple[str, str, str]], obj: dict[str, Any]) -> bool:
    meta = obj.get("metadata", {})
    for field, op, value in reqs:
        actual = meta.get(field.split(".", 1)[1], "")
        if (actual == value) != (op == "="):
            return False
    return True


# --------------------------------------------------------------------------------------------
# Patches
# --------------------------------------------------------------------------------------------


class _PatchFailed(Exception):
    pass


def _json_equal(a: Any, b: Any) -> bool:
    # Python's 1 == True would make {"op": "test", "value": true} pass against 1.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _pointer_tokens(pointer: Any) -> list[str]:
    if not isinstance(pointer, str):
        raise _PatchFailed(f"invalid JSON pointer {pointer!r}")
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise _PatchFailed(f"JSON pointer must start with '/': {pointer!r}")
    # RFC 6901 order matters: "~01" must decode to "~1", not "/".
    return [tok.replace("~1", "/").replace("~0", "~") for tok in pointer[1:].split("/")]


def _array_index(token: str, length: int, *, allow_end: bool) -> int:
    if token == "-":
        if allow_end:
            return length
        raise _PatchFailed("'-' is only valid as the target of an add")
    if not re.fullmatch(r"0|[1-9][0-9]*", token):
        raise _PatchFailed(f"invalid array index {token!r}")
    index = int(token)
    if index > length or (index == length and not allow_end):
        raise _PatchFailed(f"array index {index} out of bounds")
    return index


def _pointer_get(doc: Any, tokens: list[str]) -> Any:
    current = doc
    for token in tokens:
        if isinstance(current, dict):
            if token not in current:
                raise _PatchFailed(f"path segment {token!r} not found")
            current = current[token]
        elif isinstance(current, list):
            current = current[_array_index(token, len(current), allow_end=False)]
        else:
            raise _PatchFailed(f"cannot descend into a scalar at {token!r}")
    return current


def _pointer_add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent = _pointer_get(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_array_index(last, len(parent), allow_end=True), value)
    else:
        raise _PatchFailed("add target's parent is not a container")
    return doc


def _pointer_remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise _PatchFailed("cannot remove the document root")
    parent = _pointer_get(doc, tokens[:-1])
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _PatchFailed(f"remove target {last!r} does not exist")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_array_index(last, len(parent), allow_end=False))
    raise _PatchFailed("remove target's parent is not a container")


def apply_json_patch(doc: Any, operations: list[Any]) -> Any:
    """RFC 6902. Atomic: works on a copy and raises _PatchFailed on the first failing operation."""
    doc = copy.deepcopy(doc)
    for op in operations:
        if not isinstance(op, dict) or not isinstance(op.get("op"), str):
            raise _PatchFailed(f"invalid operation {op!r}")
        kind = op["op"]
        path = _pointer_tokens(op.get("path"))
        if kind in ("add", "replace", "test") and "value" not in op:
            raise _PatchFailed(f"operation {kind!r} at {op.get('path')!r} is missing 'value'")
        if kind == "add":
            doc = _pointer_add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            _pointer_remove(doc, path)
        elif kind == "replace":
            if not path:
                doc = copy.deepcopy(op["value"])
                continue
            _pointer_get(doc, path)  # RFC 6902 requires the target to exist
            parent = _pointer_get(doc, path[:-1])
            if isinstance(parent, list):
                parent[_array_index(path[-1], len(parent), allow_end=False)] = copy.deepcopy(op["value"])
            else:
                parent[path[-1]] = copy.deepcopy(op["value"])
        elif kind in ("move", "copy"):
            source = _pointer_tokens(op.get("from"))
            if kind == "move":
                if path == source:
                    continue
                if path[: len(source)] == source:
                    raise _PatchFailed("cannot move a value into one of its own children")
                doc = _pointer_add(doc, path, _pointer_remove(doc, source))
            else:
                doc = _pointer_add(doc, path, copy.deepcopy(_pointer_get(doc, source)))
        elif kind == "test":
            if not _json_equal(_pointer_get(doc, path), op["value"]):
                raise _PatchFailed(f"testing value {op.get('path')} failed")
        else:
            raise _PatchFailed(f"unexpected kind of operation {kind!r}")
    return doc


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def apply_strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Merge patch plus the strategic bits the official client and kubectl rely on: keyed list
    merges (containers by name, ...), ``$patch: replace|delete`` and ``$deleteFromPrimitiveList``."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return apply_strategic_merge_patch(None, {k: v for k, v in patch.items() if k != "$patch"})
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list) and isinstance(value, list):
                result[field] = [item for item in result[field] if item not in value]
            continue
        if key.startswith("$"):
            # $setElementOrder/..., $retainKeys: ordering/pruning hints we don't need to honour.
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and key in _MERGE_KEYS:
            result[key] = _merge_keyed_list(result.get(key), value, _MERGE_KEYS[key])
        elif isinstance(value, dict):
            if value.get("$patch") == "delete":
                result.pop(key, None)
            else:
                result[key] = apply_strategic_merge_patch(result.get(key), value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _merge_keyed_list(base: Any, items: list[Any], merge_key: str) -> list[Any]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" for item in items):
        return [
            apply_strategic_merge_patch(None, item)
            for item in items
            if not (isinstance(item, dict) and item.get("$patch") == "replace")
        ]
    result = copy.deepcopy(base) if isinstance(base, list) else []
    for item in items:
        if not isinstance(item, dict) or merge_key not in item:
            result.append(copy.deepcopy(item))
            continue
        position = next(
            (
                i
                for i, existing in enumerate(result)
                if isinstance(existing, dict) and existing.get(merge_key) == item[merge_key]
            ),
            None,
        )
        if item.get("$patch") == "delete":
            if position is not None:
                result.pop(position)
        elif position is None:
            result.append(apply_strategic_merge_patch(None, item))
        else:
            result[position] = apply_strategic_merge_patch(result[position], item)
    return result


# --------------------------------------------------------------------------------------------
# Defaulting, validation, hashing
# --------------------------------------------------------------------------------------------


def _now(seconds: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _set_default(obj: dict[str, Any], key: str, value: Any) -> None:
    if obj.get(key) is None:
        obj[key] = value


def _default_pull_policy(image: str) -> str:
    # core/v1 SetDefaults_Container: ":latest" or no tag means Always, digests never float.
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def _default_pod_template(template: dict[str, Any]) -> None:
    # The apiserver defaults templates on every write; doing the same means a template copied
    # back from a ReplicaSet compares equal to the Deployment's, exactly as on a real cluster.
    pod_spec = template.get("spec")
    if not isinstance(pod_spec, dict):
        return
    _set_default(pod_spec, "restartPolicy", "Always")
    _set_default(pod_spec, "terminationGracePeriodSeconds", 30)
    _set_default(pod_spec, "dnsPolicy", "ClusterFirst")
    _set_default(pod_spec, "securityContext", {})
    _set_default(pod_spec, "schedulerName", "default-scheduler")
    for list_key in ("initContainers", "containers"):
        for container in pod_spec.get(list_key) or []:
            if not isinstance(container, dict):
                continue
            _set_default(container, "terminationMessagePath", "/dev/termination-log")
            _set_default(container, "terminationMessagePolicy", "File")
            if isinstance(container.get("image"), str):
                _set_default(container, "imagePullPolicy", _default_pull_policy(container["image"]))
            _set_default(container, "resources", {})
            for port in container.get("ports") or []:
                if isinstance(port, dict):
                    _set_default(port, "protocol", "TCP")


def _default_deployment(obj: dict[str, Any]) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return
    _set_default(spec, "replicas", 1)
    _set_default(spec, "strategy", {})
    strategy = spec["strategy"]
    if isinstance(strategy, dict):
        _set_default(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            _set_default(strategy, "rollingUpdate", {})
            if isinstance(strategy["rollingUpdate"], dict):
                _set_default(strategy["rollingUpdate"], "maxUnavailable", "25%")
                _set_default(strategy["rollingUpdate"], "maxSurge", "25%")
    _set_default(spec, "revisionHistoryLimit", 10)
    _set_default(spec, "progressDeadlineSeconds", 600)
    if isinstance(spec.get("template"), dict):
        _default_pod_template(spec["template"])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate_deployment(obj: dict[str, Any], old: dict[str, Any] | None) -> None:
    meta = obj["metadata"]
    name = meta.get("name") or ""
    causes: list[tuple[str, str, str]] = []

    def invalid(field: str, value: Any, why: str) -> None:
        causes.append(("FieldValueInvalid", field, f"Invalid value: {json.dumps(value)}: {why}"))

    def required(field: str) -> None:
        causes.append(("FieldValueRequired", field, "Required value"))

    if not _DNS_SUBDOMAIN.fullmatch(name) or len(name) > 253:
        invalid(
            "metadata.name",
            name,
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.'",
        )
    for field in ("labels", "annotations"):
        values = meta.get(field)
        if values is not None and (
            not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values())
        ):
            invalid(f"metadata.{field}", values, "must be a map of string to string")
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        required("spec")
        raise _invalid("Deployment", name, causes)
    replicas = spec.get("replicas")
    if not _is_int(replicas) or replicas < 0:
        invalid("spec.replicas", replicas, "must be greater than or equal to 0")
    limit = spec.get("revisionHistoryLimit")
    if not _is_int(limit) or limit < 0:
        invalid("spec.revisionHistoryLimit", limit, "must be greater than or equal to 0")
    selector = spec.get("selector")
    if not isinstance(selector, dict):
        required("spec.selector")
    elif not selector.get("matchLabels") and not selector.get("matchExpressions"):
        invalid("spec.selector", selector, "empty selector is invalid for deployment")
    template = spec.get("template")
    if not isinstance(template, dict):
        required("spec.template")
    else:
        labels = (template.get("metadata") or {}).get("labels") or {}
        if isinstance(selector, dict) and not selector_object_matches(selector, labels):
            invalid("spec.template.metadata.labels", labels, "`selector` does not match template `labels`")
        pod_spec = template.get("spec") or {}
        containers = pod_spec.get("containers")
        if not isinstance(containers, list) or not containers:
            required("spec.template.spec.containers")
        else:
            seen: set[str] = set()
            for i, container in enumerate(containers):
                where = f"spec.template.spec.containers[{i}]"
                if not isinstance(container, dict):
                    invalid(where, container, "must be an object")
                    continue
                if not container.get("name"):
                    required(f"{where}.name")
                elif container["name"] in seen:
                    causes.append(
                        ("FieldValueDuplicate", f"{where}.name", f'Duplicate value: "{container["name"]}"')
                    )
                else:
                    seen.add(container["name"])
                if not container.get("image"):
                    required(f"{where}.image")
        if pod_spec.get("restartPolicy") not in (None, "Always"):
            causes.append(
                (
                    "FieldValueNotSupported",
                    "spec.template.spec.restartPolicy",
                    'Unsupported value: supported values: "Always"',
                )
            )
    if old is not None and old["spec"].get("selector") != spec.get("selector"):
        invalid("spec.selector", spec.get("selector"), "field is immutable")
    if causes:
        raise _invalid("Deployment", name, causes)


def _template_without_hash(template: dict[str, Any]) -> dict[str, Any]:
    stripped = copy.deepcopy(template)
    metadata = stripped.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("labels"), dict):
        metadata["labels"].pop(POD_TEMPLATE_HASH, None)
        # apimachinery's semantic equality treats an empty map like a missing one.
        if not metadata["labels"]:
            del metadata["labels"]
    if isinstance(metadata, dict) and not metadata:
        del stripped["metadata"]
    return stripped


def _template_key(template: dict[str, Any]) -> str:
    return json.dumps(_template_without_hash(template), sort_keys=True, separators=(",", ":"))


def pod_template_hash(template: dict[str, Any], collision_count: int = 0) -> str:
    """Short stable hash of a template (ignoring pod-template-hash), 10 chars of [a-z0-9]."""
    material = _template_key(template)
    if collision_count:
        material += f"#{collision_count}"
    number = int.from_bytes(hashlib.sha256(material.encode()).digest()[:8], "big")
    chars = []
    for _ in range(10):
        number, digit = divmod(number, len(_SAFE_ALPHABET))
        chars.append(_SAFE_ALPHABET[digit])
    return "".join(chars)


def _revision(rs: dict[str, Any]) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _resolve_int_or_percent(value: Any, total: int, *, round_up: bool) -> int:
    if _is_int(value):
        return value
    if isinstance(value, str) and value.endswith("%"):
        try:
            percent = int(value[:-1])
        except ValueError:
            return 0
        scaled = percent * total
        return -(-scaled // 100) if round_up else scaled // 100
    return 0


def _surge_and_unavailable(dep: dict[str, Any]) -> tuple[int, int]:
    spec = dep["spec"]
    desired = spec.get("replicas", 1)
    strategy = spec.get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    surge = _resolve_int_or_percent(rolling.get("maxSurge", "25%"), desired, round_up=True)
    unavailable = _resolve_int_or_percent(rolling.get("maxUnavailable", "25%"), desired, round_up=False)
    # deploymentutil.ResolveFenceposts: both zero would make no progress possible.
    if surge == 0 and unavailable == 0:
        unavailable = 1
    if desired == 0:
        unavailable = 0
    return surge, min(unavailable, desired)


def _set_counts(status: dict[str, Any], counts: dict[str, int]) -> None:
    # Go's omitempty: zero-valued counters are absent on the wire, so the Python client sees None.
    for key, value in counts.items():
        if value:
            status[key] = value
        else:
            status.pop(key, None)


# --------------------------------------------------------------------------------------------
# Recorded requests
# --------------------------------------------------------------------------------------------


class RecordedRequest(tuple[str, str, str, Any]):
    """``(method, path, content_type, body)``; the query string is kept apart in ``.query`` so
    path comparisons stay simple."""

    query: dict[str, list[str]]

    def __new__(
        cls, method: str, path: str, content_type: str, body: Any, query: dict[str, list[str]]
    ) -> RecordedRequest:
        self = super().__new__(cls, (method, path, content_type, body))
        self.query = query
        return self

    @property
    def method(self) -> str:
        return self[0]

    @property
    def path(self) -> str:
        return self[1]

    @property
    def content_type(self) -> str:
        return self[2]

    @property
    def body(self) -> Any:
        return self[3]


class _WatchStream:
    def __init__(self, events: Iterator[dict[str, Any]]) -> None:
        self.events = events


_Response = tuple[int, Any] | _WatchStream


# --------------------------------------------------------------------------------------------
# The fake
# --------------------------------------------------------------------------------------------


def _subject_user(subject: dict[str, Any], binding_namespace: str) -> str:
    if subject.get("kind") == "ServiceAccount":
        return f"system:serviceaccount:{subject.get('namespace', binding_namespace)}:{subject['name']}"
    return str(subject.get("name"))


class FakeKubernetes:
    """In-process fake kube-apiserver + deployment controller for apps/v1 Deployments."""

    RESOURCES = ("deployments", "replicasets")

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        auto_rollout: bool = True,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        # What creationTimestamps say; a test of "deployed N minutes ago" sets it back.
        self.wall_clock = wall_clock
        self._host = host
        self._port = port
        self.auto_rollout = auto_rollout
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {r: {} for r in self.RESOURCES}
        self._rv = 0
        # (resourceVersion, event type, resource, object snapshot) in rv order, for watches.
        self._events: list[tuple[int, str, str, dict[str, Any]]] = []
        self._requests: list[RecordedRequest] = []
        # Per-Deployment controller memory keyed by uid: current rollout target and whether a
        # test declared the rollout stuck.
        self._controller: dict[str, dict[str, Any]] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False
        self.url = ""
        # With RBAC on: bearer token -> user, and the Roles and RoleBindings that authorize them.
        self._tokens: dict[str, str] | None = None
        self._rbac: list[dict[str, Any]] = []

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeKubernetes:
        if self._server is not None:
            return self
        self._stopping = False
        server = _Server((self._host, self._port), _Handler)
        server.fake = self
        self._server = server
        self.url = f"http://{self._host}:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-kubernetes", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        server.shutdown()
        # Keep-alive connections park handler threads in a blocking read; closing the sockets
        # releases them instead of leaking one thread per client connection.
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeKubernetes:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def api_client(self, token: str | None = None) -> kubernetes.client.ApiClient:
        from kubernetes import client

        # An explicit no_proxy keeps a developer's HTTP(S)_PROXY from hijacking loopback traffic.
        configuration = client.Configuration(host=self.url, no_proxy="127.0.0.1,localhost,::1")
        if token is not None:
            configuration.api_key = {"authorization": token}
            configuration.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(configuration)

    def enforce_rbac(self, objects: list[dict[str, Any]], tokens: dict[str, str]) -> None:
        """Authorize every API request as kube-apiserver's RBAC authorizer would, with only these Roles and
        RoleBindings: a request without a known bearer token is 401, one no rule allows is 403.
        `tokens` maps a bearer token to its user, e.g. "system:serviceaccount:tars:tars"."""
        with self._lock:
            self._tokens = dict(tokens)
            self._rbac = [copy.deepcopy(obj) for obj in objects if obj["kind"] in ("Role", "RoleBinding")]

    def write_kubeconfig(self, path: str | os.PathLike[str], context: str = "fake") -> str:
        # JSON is valid YAML, so the client's yaml.safe_load reads this without PyYAML here.
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {}}],
            "contexts": [
                {"name": context, "context": {"cluster": context, "user": context, "namespace": "default"}}
            ],
            "current-context": context,
            "preferences": {},
        }
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(config, handle, indent=2)
        return context

    # ---- test helpers ----------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def create_deployment(
        self,
        namespace: str,
        name: str,
        *,
        image: str,
        replicas: int = 2,
        labels: dict[str, str] | None = None,
        container: str = "app",
        paused: bool = False,
    ) -> dict[str, Any]:
        labels = dict(labels or {"app": name})
        body = {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": dict(labels)},
                "template": {
                    "metadata": {"labels": dict(labels)},
                    "spec": {"containers": [{"name": container, "image": image}]},
                },
            },
        }
        with self._lock:
            created = self._create_deployment(namespace, body, dry_run=False)
            if paused:
                # A Deployment POSTed paused gets no ReplicaSet at all (as in Kubernetes); tests
                # asking for a paused Deployment want one with history, so pause after revision 1.
                created = self._patch_deployment(
                    namespace, name, MERGE_PATCH, {"spec": {"paused": True}}, False
                )
            return created

    def set_image(self, namespace: str, name: str, image: str, container: str = "app") -> dict[str, Any]:
        with self._lock:
            current = self._get("deployments", namespace, name)
            names = [c.get("name") for c in current["spec"]["template"]["spec"].get("containers", [])]
            if container not in names:
                # kubectl set image refuses too; a strategic merge would silently add a container.
                raise KeyError(f"deployment {namespace}/{name} has no container {container!r} (has {names})")
            patch = {"spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}}
            return self._patch_deployment(namespace, name, STRATEGIC_MERGE_PATCH, patch, False)

    def deployment(self, namespace: str, name: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._get("deployments", namespace, name))

    def replica_sets(self, namespace: str) -> list[dict[str, Any]]:
        with self._lock:
            return [
                copy.deepcopy(obj)
                for (ns, _), obj in sorted(self._objects["replicasets"].items())
                if ns == namespace
            ]

    def complete_rollouts(self) -> None:
        with self._lock:
            for (ns, name), dep in sorted(self._objects["deployments"].items()):
                self._controller_state(dep)["stuck"] = False
                self._sync(ns, name, settle=True)

    def fail_rollout(self, namespace: str, name: str) -> None:
        with self._lock:
            dep = self._get("deployments", namespace, name)
            self._controller_state(dep)["stuck"] = True
            self._sync(namespace, name)

    def add_foreign_replica_set(
        self,
        namespace: str,
        *,
        labels: dict[str, str],
        image: str,
        revision: str,
        owner_uid: str | None = None,
    ) -> dict[str, Any]:
        with self._lock:
            template = {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [{"name": "app", "image": image}]},
            }
            _default_pod_template(template)
            digest = pod_template_hash({**template, "revision": revision, "owner": owner_uid or ""})
            name = f"foreign-{digest}"
            metadata: dict[str, Any] = {
                "name": name,
                "namespace": namespace,
                "labels": dict(labels),
                "annotations": {REVISION: str(revision)},
            }
            owner = None
            if owner_uid is not None:
                owner = next(
                    (d for d in self._objects["deployments"].values() if d["metadata"]["uid"] == owner_uid),
                    None,
                )
                metadata["ownerReferences"] = [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": owner["metadata"]["name"] if owner else "another-controller",
                        "uid": owner_uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ]
            rs = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": metadata,
                "spec": {"replicas": 0, "selector": {"matchLabels": dict(labels)}, "template": template},
                "status": {"replicas": 0, "observedGeneration": 1},
            }
            self._stamp_new(rs)
            self._persist("replicasets", rs, "ADDED")
            if owner is not None:
                self._sync(owner["metadata"]["namespace"], owner["metadata"]["name"])
            return copy.deepcopy(self._get("replicasets", namespace, name))

    def delete_replica_set(self, namespace: str, name: str) -> None:
        with self._lock:
            self._delete_replica_set(namespace, name)

    # ---- storage ---------------------------------------------------------------------------

    def _get(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        obj = self._objects[resource].get((namespace, name))
        if obj is None:
            raise _not_found(resource, name)
        return obj

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _stamp_new(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["generation"] = 1
        meta["creationTimestamp"] = _now(self.wall_clock())

    def _persist(self, resource: str, obj: dict[str, Any], event: str) -> None:
        rv = self._next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        meta = obj["metadata"]
        self._objects[resource][(meta["namespace"], meta["name"])] = obj
        self._events.append((rv, event, resource, copy.deepcopy(obj)))
        self._changed.notify_all()

    def _remove(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        obj = self._objects[resource].pop((namespace, name))
        rv = self._next_rv()
        obj["metadata"]["resourceVersion"] = str(rv)
        self._events.append((rv, "DELETED", resource, copy.deepcopy(obj)))
        self._changed.notify_all()
        return obj

    def _controller_state(self, dep: dict[str, Any]) -> dict[str, Any]:
        return self._controller.setdefault(dep["metadata"]["uid"], {"target": None, "stuck": False})

    # ---- HTTP entry point ------------------------------------------------------------------

    def _handle(
        self, method: str, raw_path: str, content_type: str, raw_body: bytes, authorization: str | None = None
    ) -> _Response:
        split = urlsplit(raw_path)
        query = parse_qs(split.query, keep_blank_values=True)
        media_type = content_type.split(";", 1)[0].strip().lower()
        body: Any = None
        body_error: str | None = None
        if raw_body.strip():
            text = raw_body.decode("utf-8", errors="replace")
            try:
                body = json.loads(text)
            except ValueError as exc:
                body = text
                body_error = f"couldn't get version/kind; json parse error: {exc}"
        with self._lock:
            self._requests.append(RecordedRequest(method, split.path, content_type, body, query))
        try:
            parts = [unquote(p) for p in split.path.split("/") if p]
            self._authorize(method, parts, query, authorization)
            return self._route(method, parts, query, media_type, body, body_error)
        except KubeApiError as exc:
            return exc.code, exc.to_status()

    def _route(
        self,
        method: str,
        parts: list[str],
        query: dict[str, list[str]],
        media_type: str,
        body: Any,
        body_error: str | None,
    ) -> _Response:
        def allow(*methods: str) -> None:
            if method not in methods:
                raise KubeApiError(
                    405,
                    "MethodNotAllowed",
                    f"the server does not allow this method on the requested resource ({method})",
                )

        def json_body() -> Any:
            if media_type and media_type != "application/json":
                raise KubeApiError(
                    415,
                    "UnsupportedMediaType",
                    f'the body of the request was in an unknown format - accepted media types include: application/json (got "{media_type}")',
                )
            if body_error or not isinstance(body, dict):
                raise _bad_request(body_error or "request body must be a JSON object")
            return body

        dry_run = bool(query.get("dryRun"))
        discovery = self._discovery(parts)
        if discovery is not None:
            allow("GET")
            return 200, discovery

        if parts[:3] != ["apis", "apps", "v1"]:
            raise KubeApiError(404, "NotFound", "the server could not find the requested resource")
        rest = parts[3:]
        if len(rest) == 1 and rest[0] in self.RESOURCES:
            allow("GET")
            return self._list(rest[0], None, query)
        if len(rest) < 3 or rest[0] != "namespaces" or rest[2] not in self.RESOURCES:
            raise KubeApiError(404, "NotFound", "the server could not find the requested resource")
        namespace, resource, tail = rest[1], rest[2], rest[3:]

        if not tail:
            if resource == "deployments":
                allow("GET", "POST")
            else:
                allow("GET")
            if method == "GET":
                return self._list(resource, namespace, query)
            with self._lock:
                return 201, self._create_deployment(namespace, json_body(), dry_run=dry_run)

        name = tail[0]
        sub = tail[1] if len(tail) > 1 else None
        if len(tail) > 2 or (
            sub is not None and (resource != "deployments" or sub not in ("scale", "status"))
        ):
            raise KubeApiError(404, "NotFound", "the server could not find the requested resource")

        with self._lock:
            if resource == "replicasets":
                allow("GET", "DELETE")
                if method == "GET":
                    return 200, copy.deepcopy(self._get(resource, namespace, name))
                return 200, self._delete_replica_set(
                    namespace, name, body if isinstance(body, dict) else None, query
                )

            if sub is None:
                allow("GET", "PUT", "PATCH", "DELETE")
                if method == "GET":
                    return 200, copy.deepcopy(self._get(resource, namespace, name))
                if method == "PUT":
                    return 200, self._update_deployment(namespace, name, json_body(), dry_run)
                if method == "PATCH":
                    self._check_patch_body(media_type, body, body_error)
                    return 200, self._patch_deployment(namespace, name, media_type, body, dry_run)
                return 200, self._delete_deployment(
                    namespace, name, body if isinstance(body, dict) else None, query
                )

            if sub == "scale":
                allow("GET", "PUT", "PATCH")
                current = self._get(resource, namespace, name)
                if method == "GET":
                    return 200, self._scale_of(current)
                if method == "PUT":
                    return 200, self._update_scale(namespace, name, json_body(), dry_run)
                self._check_patch_body(media_type, body, body_error)
                patched = self._apply_patch(media_type, self._scale_of(current), body)
                return 200, self._update_scale(namespace, name, patched, dry_run)

            allow("GET", "PUT", "PATCH")
            current = self._get(resource, namespace, name)
            if method == "GET":
                return 200, copy.deepcopy(current)
            if method == "PUT":
                return 200, self._update_status(namespace, name, json_body(), dry_run)
            self._check_patch_body(media_type, body, body_error)
            return 200, self._update_status(
                namespace, name, self._apply_patch(media_type, current, body), dry_run
            )

    # ---- RBAC --------------------------------------------------------------------------------

    def _authorize(
        self, method: str, parts: list[str], query: dict[str, list[str]], authorization: str | None
    ) -> None:
        with self._lock:
            tokens, rbac = self._tokens, self._rbac
        if tokens is None:
            return
        token = (authorization or "").removeprefix("Bearer ").strip()
        user = tokens.get(token)
        if user is None:
            raise KubeApiError(401, "Unauthorized", "Unauthorized")
        if self._discovery(parts) is not None:
            return  # system:discovery lets every authenticated user read the API's shape
        rest = parts[3:] if parts[:3] == ["apis", "apps", "v1"] else []
        namespace = rest[1] if len(rest) >= 3 and rest[0] == "namespaces" else None
        resource = rest[2] if namespace is not None else (rest[0] if rest else "")
        name = rest[3] if namespace is not None and len(rest) >= 4 else None
        if namespace is not None and len(rest) >= 5:
            resource = f"{resource}/{rest[4]}"
        watching = query.get("watch", [""])[0].lower() in ("true", "1")
        verb = {
            "GET": "get" if name else ("watch" if watching else "list"),
            "POST": "create",
            "PUT": "update",
            "PATCH": "patch",
            "DELETE": "delete" if name else "deletecollection",
        }.get(method, method.lower())
        if namespace is not None and self._allowed(rbac, user, namespace, resource, verb, name):
            return
        what = f'{resource.split("/")[0]}.apps "{name}"' if name else resource
        where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
        raise KubeApiError(
            403,
            "Forbidden",
            f'{what} is forbidden: User "{user}" cannot {verb} resource "{resource}" in API group "apps"{where}',
            {"name": name, "group": "apps", "kind": resource.split("/")[0]} if name else None,
        )

    @staticmethod
    def _allowed(
        rbac: list[dict[str, Any]], user: str, namespace: str, resource: str, verb: str, name: str | None
    ) -> bool:
        bound = {
            binding["roleRef"]["name"]
            for binding in rbac
            if binding["kind"] == "RoleBinding"
            and binding["metadata"].get("namespace") == namespace
            and binding["roleRef"]["kind"] == "Role"
            and any(_subject_user(subject, namespace) == user for subject in binding.get("subjects", []))
        }
        for role in rbac:
            if role["kind"] != "Role" or role["metadata"].get("namespace") != namespace:
                continue
            if role["metadata"]["name"] not in bound:
                continue
            for rule in role.get("rules", []):
                names = rule.get("resourceNames")
                if (
                    {"apps", "*"} & set(rule.get("apiGroups", []))
                    and {resource, "*"} & set(rule.get("resources", []))
                    and {verb, "*"} & set(rule.get("verbs", []))
                    # resourceNames never allow list, watch, create or deletecollection (they have no name)
                    and (not names or (name is not None and name in names))
                ):
                    return True
        return False

    def _discovery(self, parts: list[str]) -> dict[str, Any] | None:
        address = self.url.removeprefix("http://")
        if parts == ["version"]:
            return {
                "major": "1",
                "minor": "31",
                "gitVersion": "v1.31.0-fake",
                "gitCommit": "0" * 40,
                "gitTreeState": "clean",
                "buildDate": "2024-08-13T00:00:00Z",
                "goVersion": "go1.22.5",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        if parts == ["api"]:
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
            }
        if parts == ["api", "v1"]:
            return {"kind": "APIResourceList", "groupVersion": "v1", "resources": []}
        groups = {
            "apps": {
                "name": "apps",
                "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
            },
            "autoscaling": {
                "name": "autoscaling",
                "versions": [{"groupVersion": "autoscaling/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "autoscaling/v1", "version": "v1"},
            },
        }
        if parts == ["apis"]:
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": list(groups.values())}
        if len(parts) == 2 and parts[0] == "apis" and parts[1] in groups:
            return {"kind": "APIGroup", "apiVersion": "v1", **groups[parts[1]]}
        if parts == ["apis", "apps", "v1"]:
            crud = ["create", "delete", "get", "list", "patch", "update", "watch"]
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": "apps/v1",
                "resources": [
                    {
                        "name": "deployments",
                        "singularName": "deployment",
                        "namespaced": True,
                        "kind": "Deployment",
                        "verbs": crud,
                        "shortNames": ["deploy"],
                    },
                    {
                        "name": "deployments/scale",
                        "singularName": "",
                        "namespaced": True,
                        "group": "autoscaling",
                        "version": "v1",
                        "kind": "Scale",
                        "verbs": ["get", "patch", "update"],
                    },
                    {
                        "name": "deployments/status",
                        "singularName": "",
                        "namespaced": True,
                        "kind": "Deployment",
                        "verbs": ["get", "patch", "update"],
                    },
                    {
                        "name": "replicasets",
                        "singularName": "replicaset",
                        "namespaced": True,
                        "kind": "ReplicaSet",
                        "verbs": ["delete", "get", "list", "watch"],
                        "shortNames": ["rs"],
                    },
                ],
            }
        if parts == ["apis", "autoscaling", "v1"]:
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": "autoscaling/v1",
                "resources": [],
            }
        return None

    # ---- list / watch ----------------------------------------------------------------------

    def _filters(self, query: dict[str, list[str]]) -> tuple[list[Requirement], list[tuple[str, str, str]]]:
        labels = parse_label_selector(query["labelSelector"][0]) if query.get("labelSelector") else []
        fields = parse_field_selector(query["fieldSelector"][0]) if query.get("fieldSelector") else []
        return labels, fields

    def _list(self, resource: str, namespace: str | None, query: dict[str, list[str]]) -> _Response:
        label_reqs, field_reqs = self._filters(query)

        def wanted(obj: dict[str, Any]) -> bool:
            meta = obj["metadata"]
            return (
                (namespace is None or meta["namespace"] == namespace)
                and labels_match(label_reqs, meta.get("labels"))
                and _fields_match(field_reqs, obj)
            )

        if query.get("watch", [""])[0].lower() in ("true", "1"):
            since = query.get("resourceVersion", [""])[0]
            timeout = float(query["timeoutSeconds"][0]) if query.get("timeoutSeconds") else 1800.0
            start = int(since) if since.isdigit() and since != "0" else None
            return _WatchStream(self._watch(resource, wanted, start, timeout))

        with self._lock:
            items = []
            for _, obj in sorted(self._objects[resource].items()):
                if wanted(obj):
                    item = copy.deepcopy(obj)
                    # Like the real apiserver, list items don't repeat apiVersion/kind.
                    item.pop("apiVersion", None)
                    item.pop("kind", None)
                    items.append(item)
            kind = "DeploymentList" if resource == "deployments" else "ReplicaSetList"
            return 200, {
                "apiVersion": "apps/v1",
                "kind": kind,
                "metadata": {"resourceVersion": str(self._rv)},
                "items": items,
            }

    def _watch(
        self,
        resource: str,
        wanted: Callable[[dict[str, Any]], bool],
        start: int | None,
        timeout: float,
    ) -> Iterator[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._lock:
            if start is None:
                # No resourceVersion: synthesize ADDED for the current state, then follow changes.
                initial = [copy.deepcopy(o) for _, o in sorted(self._objects[resource].items()) if wanted(o)]
                cursor = self._rv
            else:
                initial = []
                cursor = start
        for obj in initial:
            yield {"type": "ADDED", "object": obj}
        while True:
            with self._changed:
                index = bisect.bisect_right(self._events, cursor, key=lambda event: event[0])
                pending = self._events[index:]
                if not pending:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._stopping:
                        return
                    self._changed.wait(min(remaining, 1.0))
                    continue
                cursor = pending[-1][0]
            for _, event_type, event_resource, obj in pending:
                if event_resource == resource and wanted(obj):
                    yield {"type": event_type, "object": copy.deepcopy(obj)}

    # ---- writes ----------------------------------------------------------------------------

    def _check_patch_body(self, media_type: str, body: Any, body_error: str | None) -> None:
        if media_type.startswith(APPLY_PATCH_PREFIX):
            raise KubeApiError(
                415,
                "UnsupportedMediaType",
                f'the body of the request was in an unknown format - server-side apply ("{media_type}") is not '
                "supported by FakeKubernetes; use application/json-patch+json, application/merge-patch+json or "
                "application/strategic-merge-patch+json",
            )
        if media_type not in (JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH):
            raise KubeApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types include: {JSON_PATCH}, "
                f'{MERGE_PATCH}, {STRATEGIC_MERGE_PATCH}, application/apply-patch+yaml (got "{media_type}")',
            )
        if body_error:
            raise _bad_request(body_error)
        if media_type == JSON_PATCH and not isinstance(body, list):
            raise _bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
        if media_type != JSON_PATCH and not isinstance(body, dict):
            raise _bad_request("patch body must be a JSON object for merge patches")

    def _apply_patch(self, media_type: str, current: dict[str, Any], patch: Any) -> dict[str, Any]:
        if media_type == JSON_PATCH:
            try:
                result = apply_json_patch(current, patch)
            except _PatchFailed as exc:
                raise _unprocessable(str(exc)) from None
        elif media_type == MERGE_PATCH:
            result = apply_merge_patch(current, patch)
        else:
            result = apply_strategic_merge_patch(current, patch)
        if not isinstance(result, dict) or not isinstance(result.get("metadata", {}), dict):
            raise _bad_request("patched object is not a valid object")
        return result

    def _create_deployment(self, namespace: str, body: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        if meta.get("namespace") not in (None, "", namespace):
            raise _bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + pod_template_hash({"seed": str(uuid.uuid4())})[:5]
        name = meta.get("name") or ""
        if not name:
            raise _invalid(
                "Deployment",
                "",
                [("FieldValueRequired", "metadata.name", "Required value: name or generateName is required")],
            )
        if (namespace, name) in self._objects["deployments"]:
            raise _already_exists("deployments", name)
        obj["apiVersion"], obj["kind"] = "apps/v1", "Deployment"
        meta["namespace"] = namespace
        for server_owned in (
            "uid",
            "resourceVersion",
            "generation",
            "creationTimestamp",
            "deletionTimestamp",
        ):
            meta.pop(server_owned, None)
        obj["status"] = {}
        _default_deployment(obj)
        _validate_deployment(obj, None)
        self._stamp_new(obj)
        if dry_run:
            return obj
        self._persist("deployments", obj, "ADDED")
        self._sync(namespace, name)
        return copy.deepcopy(self._get("deployments", namespace, name))

    def _prepare_update(
        self, namespace: str, name: str, candidate: dict[str, Any], current: dict[str, Any]
    ) -> dict[str, Any]:
        obj = copy.deepcopy(candidate)
        meta = obj.get("metadata")
        if not isinstance(meta, dict):
            meta = obj["metadata"] = {}
        if meta.get("name") not in (None, "", name):
            raise _bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        if meta.get("namespace") not in (None, "", namespace):
            raise _bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        current_meta = current["metadata"]
        if meta.get("resourceVersion") not in (None, "", current_meta["resourceVersion"]):
            raise _conflict("deployments", name)
        if meta.get("uid") not in (None, "", current_meta["uid"]):
            raise _conflict(
                "deployments",
                name,
                f"Precondition failed: UID in precondition: {meta['uid']}, UID in object meta: {current_meta['uid']}",
            )
        obj["apiVersion"], obj["kind"] = "apps/v1", "Deployment"
        meta["name"], meta["namespace"] = name, namespace
        for server_owned in ("uid", "creationTimestamp", "generation", "resourceVersion"):
            meta[server_owned] = current_meta[server_owned]
        for optional in ("labels", "annotations"):
            if optional in meta and not meta[optional]:
                del meta[optional]
        return obj

    def _commit_update(
        self,
        namespace: str,
        name: str,
        obj: dict[str, Any],
        current: dict[str, Any],
        *,
        dry_run: bool,
        sync: bool,
    ) -> dict[str, Any]:
        if current.get("spec") != obj.get("spec"):
            obj["metadata"]["generation"] = current["metadata"]["generation"] + 1
        if obj == current:
            # The apiserver skips no-op writes: no new resourceVersion, no watch event.
            return copy.deepcopy(current)
        if dry_run:
            return obj
        self._persist("deployments", obj, "MODIFIED")
        if sync:
            self._sync(namespace, name)
        return copy.deepcopy(self._get("deployments", namespace, name))

    def _update_deployment(
        self, namespace: str, name: str, body: dict[str, Any], dry_run: bool
    ) -> dict[str, Any]:
        current = self._get("deployments", namespace, name)
        obj = self._prepare_update(namespace, name, body, current)
        # Writes to the main resource cannot change status (the status subresource owns it).
        obj["status"] = copy.deepcopy(current.get("status", {}))
        _default_deployment(obj)
        _validate_deployment(obj, current)
        return self._commit_update(namespace, name, obj, current, dry_run=dry_run, sync=True)

    def _patch_deployment(
        self, namespace: str, name: str, media_type: str, patch: Any, dry_run: bool
    ) -> dict[str, Any]:
        current = self._get("deployments", namespace, name)
        return self._update_deployment(
            namespace, name, self._apply_patch(media_type, current, patch), dry_run
        )

    def _update_status(
        self, namespace: str, name: str, body: dict[str, Any], dry_run: bool
    ) -> dict[str, Any]:
        current = self._get("deployments", namespace, name)
        prepared = self._prepare_update(namespace, name, body, current)
        obj = copy.deepcopy(current)
        status = prepared.get("status")
        obj["status"] = copy.deepcopy(status) if isinstance(status, dict) else {}
        return self._commit_update(namespace, name, obj, current, dry_run=dry_run, sync=False)

    def _scale_of(self, dep: dict[str, Any]) -> dict[str, Any]:
        meta = dep["metadata"]
        replicas = dep["spec"].get("replicas", 1)
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta["resourceVersion"],
                "creationTimestamp": meta["creationTimestamp"],
            },
            # ScaleSpec.replicas is omitempty, so a Scale of 0 has an empty spec on the wire.
            "spec": {"replicas": replicas} if replicas else {},
            "status": {
                "replicas": dep.get("status", {}).get("replicas", 0),
                "selector": selector_to_string(dep["spec"].get("selector")),
            },
        }

    def _update_scale(
        self, namespace: str, name: str, scale: dict[str, Any], dry_run: bool
    ) -> dict[str, Any]:
        current = self._get("deployments", namespace, name)
        meta = scale.get("metadata") if isinstance(scale.get("metadata"), dict) else {}
        if meta.get("name") not in (None, "", name):
            raise _bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        if meta.get("resourceVersion") not in (None, "", current["metadata"]["resourceVersion"]):
            raise _conflict("deployments", name)
        spec = scale.get("spec") if isinstance(scale.get("spec"), dict) else {}
        replicas = spec.get("replicas", 0)
        if not _is_int(replicas) or replicas < 0:
            raise KubeApiError(
                422,
                "Invalid",
                f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: {json.dumps(replicas)}: '
                "must be greater than or equal to 0",
                {
                    "name": name,
                    "group": "autoscaling",
                    "kind": "Scale",
                    "causes": [
                        {
                            "reason": "FieldValueInvalid",
                            "message": "must be greater than or equal to 0",
                            "field": "spec.replicas",
                        }
                    ],
                },
            )
        obj = copy.deepcopy(current)
        obj["spec"]["replicas"] = replicas
        result = self._commit_update(namespace, name, obj, current, dry_run=dry_run, sync=True)
        return self._scale_of(result)

    def _deletion_policy(self, options: dict[str, Any] | None, query: dict[str, list[str]] | None) -> str:
        options = options or {}
        policy = options.get("propagationPolicy") or (query or {}).get("propagationPolicy", ["Background"])[0]
        if policy not in ("Background", "Foreground", "Orphan"):
            raise _bad_request(f"invalid propagationPolicy {policy!r}")
        if options.get("orphanDependents") is True:
            policy = "Orphan"
        return policy

    def _check_preconditions(
        self, resource: str, obj: dict[str, Any], options: dict[str, Any] | None
    ) -> None:
        pre = (options or {}).get("preconditions") or {}
        meta = obj["metadata"]
        if pre.get("uid") not in (None, meta["uid"]):
            raise _conflict(
                resource,
                meta["name"],
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {meta['uid']}",
            )
        if pre.get("resourceVersion") not in (None, meta["resourceVersion"]):
            raise _conflict(
                resource,
                meta["name"],
                f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                f"ResourceVersion in object meta: {meta['resourceVersion']}",
            )

    def _deleted_status(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": obj["metadata"]["name"],
                "group": "apps",
                "kind": resource,
                "uid": obj["metadata"]["uid"],
            },
        }

    def _delete_deployment(
        self,
        namespace: str,
        name: str,
        options: dict[str, Any] | None = None,
        query: dict[str, list[str]] | None = None,
    ) -> dict[str, Any]:
        dep = self._get("deployments", namespace, name)
        self._check_preconditions("deployments", dep, options)
        policy = self._deletion_policy(options, query)
        if query and query.get("dryRun"):
            return self._deleted_status("deployments", dep)
        uid = dep["metadata"]["uid"]
        owned = [
            rs for rs in self._namespace_objects("replicasets", namespace) if self._controller_uid(rs) == uid
        ]
        self._remove("deployments", namespace, name)
        self._controller.pop(uid, None)
        # The garbage collector's work, done inline: cascade to or orphan the owned ReplicaSets.
        for rs in owned:
            if policy == "Orphan":
                updated = copy.deepcopy(rs)
                refs = [r for r in updated["metadata"].get("ownerReferences", []) if r.get("uid") != uid]
                if refs:
                    updated["metadata"]["ownerReferences"] = refs
                else:
                    updated["metadata"].pop("ownerReferences", None)
                self._persist("replicasets", updated, "MODIFIED")
            else:
                self._remove("replicasets", namespace, rs["metadata"]["name"])
        return self._deleted_status("deployments", dep)

    def _delete_replica_set(
        self,
        namespace: str,
        name: str,
        options: dict[str, Any] | None = None,
        query: dict[str, list[str]] | None = None,
    ) -> dict[str, Any]:
        rs = self._get("replicasets", namespace, name)
        self._check_preconditions("replicasets", rs, options)
        self._deletion_policy(options, query)
        if query and query.get("dryRun"):
            return self._deleted_status("replicasets", rs)
        self._remove("replicasets", namespace, name)
        owner_uid = self._controller_uid(rs)
        owner = next(
            (
                d
                for d in self._namespace_objects("deployments", namespace)
                if d["metadata"]["uid"] == owner_uid
            ),
            None,
        )
        if owner is not None:
            # The controller watches its ReplicaSets; losing the current one makes it recreate it.
            self._sync(namespace, owner["metadata"]["name"])
        return self._deleted_status("replicasets", rs)

    # ---- the deployment controller -----------------------------------------------------------

    def _namespace_objects(self, resource: str, namespace: str) -> list[dict[str, Any]]:
        return [obj for (ns, _), obj in sorted(self._objects[resource].items()) if ns == namespace]

    @staticmethod
    def _controller_uid(obj: dict[str, Any]) -> str | None:
        for ref in obj["metadata"].get("ownerReferences") or []:
            if ref.get("controller"):
                return ref.get("uid")
        return None

    def _owned_replica_sets(self, dep: dict[str, Any]) -> list[dict[str, Any]]:
        uid = dep["metadata"]["uid"]
        selector = dep["spec"].get("selector")
        return [
            rs
            for rs in self._namespace_objects("replicasets", dep["metadata"]["namespace"])
            if self._controller_uid(rs) == uid
            and selector_object_matches(selector, rs["metadata"].get("labels"))
        ]

    def _new_replica_set(self, dep: dict[str, Any], revision: int) -> dict[str, Any]:
        meta, spec = dep["metadata"], dep["spec"]
        namespace = meta["namespace"]
        status = dep.setdefault("status", {})
        collisions = status.get("collisionCount", 0)
        while True:
            template_hash = pod_template_hash(spec["template"], collisions)
            rs_name = f"{meta['name']}-{template_hash}"
            if (namespace, rs_name) not in self._objects["replicasets"]:
                break
            # Same name, different template (or someone else's object): bump the collision
            # count so the hash changes, like the real controller does.
            collisions += 1
        if collisions:
            status["collisionCount"] = collisions
        template = copy.deepcopy(spec["template"])
        template.setdefault("metadata", {})
        template["metadata"]["labels"] = {
            **(template["metadata"].get("labels") or {}),
            POD_TEMPLATE_HASH: template_hash,
        }
        selector = copy.deepcopy(spec["selector"])
        selector["matchLabels"] = {**(selector.get("matchLabels") or {}), POD_TEMPLATE_HASH: template_hash}
        rs_spec: dict[str, Any] = {"replicas": 0, "selector": selector, "template": template}
        if spec.get("minReadySeconds"):
            rs_spec["minReadySeconds"] = spec["minReadySeconds"]
        rs = {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": rs_name,
                "namespace": namespace,
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {REVISION: str(revision)},
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": "Deployment",
                        "name": meta["name"],
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "spec": rs_spec,
            "status": {"replicas": 0},
        }
        self._stamp_new(rs)
        return rs

    @staticmethod
    def _bump_revision(rs: dict[str, Any], new_revision: int) -> None:
        # deploymentutil.SetNewReplicaSetAnnotations: reusing an old ReplicaSet moves it to the new
        # revision and remembers the numbers it used to carry in revision-history.
        annotations = rs["metadata"].setdefault("annotations", {})
        old = annotations.get(REVISION)
        if _revision(rs) >= new_revision:
            return
        annotations[REVISION] = str(new_revision)
        if old is not None:
            history = annotations.get(REVISION_HISTORY, "")
            annotations[REVISION_HISTORY] = f"{history},{old}" if history else old

    def _sync(self, namespace: str, name: str, *, settle: bool = False) -> None:
        """One reconcile of a Deployment (k8s.io/kubernetes/pkg/controller/deployment), condensed.

        ``settle`` forces the rollout to finish (pods become ready, old ReplicaSets drain); without
        it that only happens with auto_rollout=True and a rollout not marked stuck.
        """
        stored = self._objects["deployments"].get((namespace, name))
        if stored is None:
            return
        dep = copy.deepcopy(stored)
        state = self._controller_state(dep)
        spec = dep["spec"]
        dep.setdefault("status", {})
        desired = spec.get("replicas", 1)
        paused = bool(spec.get("paused"))
        surge, _ = _surge_and_unavailable(dep)

        originals = {rs["metadata"]["name"]: rs for rs in self._owned_replica_sets(dep)}
        work = {rs_name: copy.deepcopy(rs) for rs_name, rs in originals.items()}
        by_age = sorted(
            work.values(), key=lambda rs: (rs["metadata"]["creationTimestamp"], rs["metadata"]["name"])
        )
        wanted_key = _template_key(spec["template"])
        new_rs = next((rs for rs in by_age if _template_key(rs["spec"]["template"]) == wanted_key), None)
        old_sets = [rs for rs in by_age if rs is not new_rs]

        target: dict[str, Any] | None
        if paused:
            # A paused Deployment only scales: no new ReplicaSet, no revision changes.
            active = [rs for rs in by_age if rs["spec"].get("replicas", 0) > 0]
            if len(active) == 1:
                target = active[0]
            elif active:
                target = new_rs if new_rs in active else max(active, key=_revision)
            else:
                target = new_rs or (max(by_age, key=_revision) if by_age else None)
        else:
            next_revision = max((_revision(rs) for rs in old_sets), default=0) + 1
            if new_rs is None:
                new_rs = self._new_replica_set(dep, next_revision)
                work[new_rs["metadata"]["name"]] = new_rs
            else:
                self._bump_revision(new_rs, next_revision)
            rs_annotations = new_rs["metadata"].setdefault("annotations", {})
            for key, value in (dep["metadata"].get("annotations") or {}).items():
                if key not in _ANNOTATIONS_NOT_COPIED:
                    rs_annotations[key] = value
            dep["metadata"].setdefault("annotations", {})[REVISION] = rs_annotations[REVISION]
            target = new_rs

        target_name = target["metadata"]["name"] if target is not None else None
        if not paused and state["target"] != target_name:
            # A new rollout (a deploy or an undo) gets a fresh progress deadline.
            state["stuck"] = False
        state["target"] = target_name

        if target is not None:
            target["spec"]["replicas"] = desired
        complete_now = settle or (self.auto_rollout and not state["stuck"])
        for rs in work.values():
            if complete_now and not paused and rs is not target:
                rs["spec"]["replicas"] = 0
            if complete_now:
                n = rs["spec"]["replicas"]
                _set_counts(
                    rs["status"], {"fullyLabeledReplicas": n, "readyReplicas": n, "availableReplicas": n}
                )
                rs["status"]["replicas"] = n
            original = originals.get(rs["metadata"]["name"])
            if rs is target or (original is not None and original["spec"] != rs["spec"]):
                annotations = rs["metadata"].setdefault("annotations", {})
                annotations[DESIRED_REPLICAS] = str(desired)
                annotations[MAX_REPLICAS] = str(desired + surge)
            if original is not None and original["spec"] != rs["spec"]:
                rs["metadata"]["generation"] += 1
            rs["status"]["observedGeneration"] = rs["metadata"]["generation"]

        self._compute_status(dep, list(work.values()), new_rs, target, paused, state["stuck"])
        status = dep["status"]
        complete = (
            status.get("updatedReplicas", 0) == desired
            and status.get("replicas", 0) == desired
            and status.get("availableReplicas", 0) == desired
        )
        if complete or paused:
            self._cleanup(dep, [rs for rs in work.values() if rs is not new_rs], work)

        for rs_name, rs in sorted(work.items()):
            original = originals.get(rs_name)
            if original is None:
                self._persist("replicasets", rs, "ADDED")
            elif rs != original:
                self._persist("replicasets", rs, "MODIFIED")
        for rs_name in sorted(set(originals) - set(work)):
            self._remove("replicasets", namespace, rs_name)
        if dep != stored:
            self._persist("deployments", dep, "MODIFIED")

    def _cleanup(
        self, dep: dict[str, Any], old_sets: list[dict[str, Any]], work: dict[str, dict[str, Any]]
    ) -> None:
        # deployment controller cleanupDeployment: only the oldest `excess` are candidates, and of
        # those only fully drained ReplicaSets are deleted.
        limit = dep["spec"].get("revisionHistoryLimit", 10)
        excess = len(old_sets) - limit
        if excess <= 0:
            return
        candidates = sorted(
            old_sets,
            key=lambda rs: (_revision(rs), rs["metadata"]["creationTimestamp"], rs["metadata"]["name"]),
        )
        for rs in candidates[:excess]:
            if rs["spec"].get("replicas", 0) or rs["status"].get("replicas", 0):
                continue
            if rs["metadata"]["generation"] > rs["status"].get("observedGeneration", 0):
                continue
            del work[rs["metadata"]["name"]]

    def _compute_status(
        self,
        dep: dict[str, Any],
        replica_sets: list[dict[str, Any]],
        new_rs: dict[str, Any] | None,
        target: dict[str, Any] | None,
        paused: bool,
        stuck: bool,
    ) -> None:
        # deployment controller calculateStatus + the Available/Progressing condition rules.
        status = dep["status"]
        desired = dep["spec"].get("replicas", 1)
        available = sum(rs["status"].get("availableReplicas", 0) for rs in replica_sets)
        total_spec = sum(rs["spec"].get("replicas", 0) for rs in replica_sets)
        counts = {
            "replicas": sum(rs["status"].get("replicas", 0) for rs in replica_sets),
            "updatedReplicas": new_rs["status"].get("replicas", 0) if new_rs is not None else 0,
            "readyReplicas": sum(rs["status"].get("readyReplicas", 0) for rs in replica_sets),
            "availableReplicas": available,
            "unavailableReplicas": max(total_spec - available, 0),
        }
        status["observedGeneration"] = dep["metadata"]["generation"]
        _set_counts(status, counts)

        _, max_unavailable = _surge_and_unavailable(dep)
        if available >= desired - max_unavailable:
            self._set_condition(
                status,
                "Available",
                "True",
                "MinimumReplicasAvailable",
                "Deployment has minimum availability.",
            )
        else:
            self._set_condition(
                status,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )

        rs_name = target["metadata"]["name"] if target is not None else dep["metadata"]["name"]
        complete = (
            counts["updatedReplicas"] == desired and counts["replicas"] == desired and available == desired
        )
        if paused:
            self._set_condition(status, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused")
        elif stuck:
            self._set_condition(
                status,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{rs_name}" has timed out progressing.',
            )
        elif complete:
            self._set_condition(
                status,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{rs_name}" has successfully progressed.',
            )
        else:
            self._set_condition(
                status, "Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{rs_name}" is progressing.'
            )

    @staticmethod
    def _set_condition(status: dict[str, Any], ctype: str, cstatus: str, reason: str, message: str) -> None:
        # deploymentutil.SetDeploymentCondition, except that a changed message also counts as a
        # change: with instant rollouts the controller never passes through ReplicaSetUpdated.
        conditions = status.setdefault("conditions", [])
        current = next((c for c in conditions if c.get("type") == ctype), None)
        if current is not None and (current["status"], current.get("reason"), current.get("message")) == (
            cstatus,
            reason,
            message,
        ):
            return
        now = _now()
        transition = (
            current["lastTransitionTime"] if current is not None and current["status"] == cstatus else now
        )
        conditions[:] = [c for c in conditions if c.get("type") != ctype]
        conditions.append(
            {
                "type": ctype,
                "status": cstatus,
                "lastUpdateTime": now,
                "lastTransitionTime": transition,
                "reason": reason,
                "message": message,
            }
        )


# --------------------------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: FakeKubernetes

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def track(self, conn: socket.socket, *, add: bool) -> None:
        with self._connections_lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 so urllib3's keep-alive pool works; every response carries a Content-Length or is
    # chunked (watch).
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the client's delayed ACK turns
    # every request into a ~40 ms stall.
    disable_nagle_algorithm = True
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, add=True)

    def finish(self) -> None:
        self.server.track(self.connection, add=False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        # Request logs would drown pytest output; fake.requests is the audit trail.
        return

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            result = self.server.fake._handle(
                self.command,
                self.path,
                self.headers.get("Content-Type", ""),
                raw,
                self.headers.get("Authorization"),
            )
        except Exception as exc:  # a bug in the fake should surface as a 500, not a hung client
            result = (500, KubeApiError(500, "InternalError", f"FakeKubernetes bug: {exc!r}").to_status())
        if isinstance(result, _WatchStream):
            self._stream(result)
            return
        code, payload = result
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, stream: _WatchStream) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for event in stream.events:
                line = json.dumps(event).encode() + b"\n"
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            # The client stopped watching; nothing to clean up server-side.
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch
