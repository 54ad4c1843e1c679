"""Amazon SNS's HTTP(S) delivery: check a message's signature before believing a word of it.

SNS signs the message's canonical string (the fields below, each as "Name\\nvalue\\n") with the key of the
certificate at `SigningCertURL`: SignatureVersion 1 is RSA with SHA-1, version 2 RSA with SHA-256. The
certificate, and the SubscribeURL a subscription is confirmed by visiting, are fetched only from URLs that match
the configured pattern (SNS's own hosts by default), so a forged message cannot make TARS fetch or trust
anything else. The certificates fetched are kept, a handful at most.
"""

from __future__ import annotations

import base64
import re
import threading
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

FETCH_TIMEOUT_SECONDS = 5
MAX_CERTIFICATE_BYTES = 64 * 1024
KEPT_CERTIFICATES = 8
# SNS retries a failed delivery for at most an hour (its longest HTTP retry policy); older is a replay.
MAX_AGE = timedelta(hours=1)
CLOCK_SKEW = timedelta(minutes=5)

# The fields each kind of message signs, in the order SNS strings them together.
_SUBSCRIPTION_FIELDS = ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type")
_SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": _SUBSCRIPTION_FIELDS,
    "UnsubscribeConfirmation": _SUBSCRIPTION_FIELDS,
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}


class UnverifiedMessage(Exception):
    """Not provably from SNS; the message says why, for a 401 (or 400 when it is not an SNS message at all)."""

    def __init__(self, message: str, *, malformed: bool = False) -> None:
        super().__init__(message)
        self.malformed = malformed


class SnsVerifier:
    def __init__(self, url_pattern: str, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.url_pattern = re.compile(url_pattern)
        self.now = now
        self._certificates: OrderedDict[str, rsa.RSAPublicKey] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, message: dict[str, Any]) -> None:
        kind = message.get("Type")
        fields = _SIGNED_FIELDS.get(kind) if isinstance(kind, str) else None
        if fields is None:
            raise UnverifiedMessage("not an SNS message: Type is missing or unknown", malformed=True)
        algorithm = _HASHES.get(str(message.get("SignatureVersion")))
        if algorithm is None:
            raise UnverifiedMessage("SignatureVersion must be 1 or 2")
        signature = message.get("Signature")
        if not isinstance(signature, str):
            raise UnverifiedMessage("the message is not signed")
        try:
            signature_bytes = base64.b64decode(signature, validate=True)
        except ValueError:
            raise UnverifiedMessage("the signature is not base64") from None
        canonical = "".join(
            f"{name}\n{message[name]}\n" for name in fields if isinstance(message.get(name), str)
        ).encode()
        self._check_age(message.get("Timestamp"))
        key = self._certificate(message.get("SigningCertURL"))
        try:
            key.verify(signature_bytes, canonical, padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            raise UnverifiedMessage("the signature does not match") from None

    def _check_age(self, timestamp: Any) -> None:
        """A signed message stays valid forever; one captured and replayed later must not be believed."""
        try:
            sent = datetime.fromisoformat(str(timestamp).replace("Z", "+00:00"))
        except ValueError:
            raise UnverifiedMessage("Timestamp is not an ISO 8601 time") from None
        if sent.tzinfo is None:
            sent = sent.replace(tzinfo=UTC)
        age = self.now() - sent
        if age > MAX_AGE or age < -CLOCK_SKEW:
            raise UnverifiedMessage("the message is stale: its Timestamp is too far from now")

    def allowed(self, url: Any) -> bool:
        return isinstance(url, str) and len(url) < 2048 and bool(self.url_pattern.match(url))

    def confirm_subscription(self, message: dict[str, Any]) -> None:
        """Visit the SubscribeURL of a verified SubscriptionConfirmation, as SNS asks."""
        url = message.get("SubscribeURL")
        if not self.allowed(url):
            raise UnverifiedMessage("SubscribeURL is not an SNS URL")
        with urllib.request.urlopen(str(url), timeout=FETCH_TIMEOUT_SECONDS) as answer:
            answer.read(MAX_CERTIFICATE_BYTES)

    def _certificate(self, url: Any) -> rsa.RSAPublicKey:
        if not self.allowed(url):
            raise UnverifiedMessage("SigningCertURL is not an SNS certificate URL")
        with self._lock:
            key = self._certificates.get(url)
            if key is not None:
                self._certificates.move_to_end(url)
                return key
        try:
            with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_SECONDS) as answer:
                pem = answer.read(MAX_CERTIFICATE_BYTES)
            public_key = x509.load_pem_x509_certificate(pem).public_key()
        except (OSError, ValueError) as error:
            raise UnverifiedMessage(
                f"the signing certificate could not be read ({type(error).__name__})"
            ) from None
        if not isinstance(public_key, rsa.RSAPublicKey):
            raise UnverifiedMessage("the signing certificate's key is not RSA")
        with self._lock:
            self._certificates[url] = public_key
            while len(self._certificates) > KEPT_CERTIFICATES:
                self._certificates.popitem(last=False)
        return public_key
