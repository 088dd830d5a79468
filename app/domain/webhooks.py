"""Webhooks: a round or a generation started with `callback_url` POSTs a signed JSON event there when it
ends (succeeded, failed, cancelled), so clients need not poll.

Why it looks like this:
- **Never blocks the job.** The end of a job only *queues* a delivery (Dispatcher.deliver_webhook: the task
  app.infra.task_queue.DELIVER_WEBHOOK on the default queue, sent by name); the delivery, its timeouts and its
  retries with exponential backoff run later in whichever worker is free.
- **Signed.** `X-StyleDrop-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}.{body}")>` with
  `X-StyleDrop-Timestamp` (Unix seconds): the receiver checks the signature with the user's webhook secret
  (settings page, `GET /api/v1/webhooks/secret`) and refuses old timestamps (replays). `verify()` is the
  receiver's side, for Python receivers and the tests.
- **No server-side request forgery.** The destination must be http(s) and resolve only to public addresses,
  unless the admin allow-list `STYLEDROP_WEBHOOK_ALLOW` (host names, `*.domain`, CIDR networks, comma
  separated) names it; with an allow-list set, only what it names is allowed. It is checked when the request
  comes in (422) and again, with a fresh DNS lookup, before every attempt, and the attempt connects to the
  address that lookup approved (`pinned`: the Host header and TLS's SNI keep the name), so a name that
  rebinds to a private address after the check is never reached there. Redirects are never followed (a 3xx
  counts as a failed attempt), so a public receiver cannot bounce us into the private network.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.orm import Session

from ..errors import ApiError
from ..infra.task_queue import Dispatcher
from ..settings import Settings
from .models import Generation, Round, User, utcnow
from .resources import generation_out, round_out

log = logging.getLogger(__name__)

SIGNATURE = "X-StyleDrop-Signature"
TIMESTAMP = "X-StyleDrop-Timestamp"
EVENT = "X-StyleDrop-Event"
DELIVERY = "X-StyleDrop-Delivery"


class Refused(Exception):
    """The destination is not allowed (or not a URL we send to)."""


# ---- destinations -------------------------------------------------------------------------------------------

def _allow_list(settings: Settings) -> list[str]:
    return [entry.strip().lower() for entry in settings.webhook_allow.split(",") if entry.strip()]


def _listed(host: str, addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address], allow: list[str]) -> bool:
    for entry in allow:
        if entry.startswith("*.") and host.endswith(entry[1:]):
            return True
        if entry == host:
            return True
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if addresses and all(address in network for address in addresses):
            return True
    return False


def _resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"its host {host!r} does not resolve ({exc})") from exc
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def check_destination(url: str, settings: Settings) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Raise `Refused` unless `url` is an http(s) URL we may send to (see the module's docstring); returns the
    addresses its host resolved to, which `deliver` then connects to (never a second lookup)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused("it is not an http or https URL")
    if parts.username or parts.password:
        raise Refused("it carries a user name or password")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise Refused(f"its port is not valid ({exc})") from exc
    host = parts.hostname.lower()
    addresses = _resolve(host, port)
    allow = _allow_list(settings)
    if allow:
        if not _listed(host, addresses, allow):
            raise Refused(f"{host} is not on the server's webhook allow-list (STYLEDROP_WEBHOOK_ALLOW)")
        return addresses
    private = [str(a) for a in addresses if not a.is_global or a.is_multicast]
    if private:
        raise Refused(f"{host} resolves to a private, loopback or reserved address ({', '.join(private)}); "
                      f"the server's admin may allow it with STYLEDROP_WEBHOOK_ALLOW")
    return addresses


def pinned(url: str, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> tuple[str, str, dict[str, Any]]:
    """(URL to the checked address, Host header, request extensions): the connection goes to the address the
    check approved, not to whatever a second DNS lookup answers (a rebinding name could answer a public
    address to the check and 127.0.0.1 to the connection). TLS still names and verifies the host (SNI)."""
    parts = urlsplit(url)
    host = f"[{address}]" if address.version == 6 else str(address)
    netloc = f"{host}:{parts.port}" if parts.port else host
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    return urlunsplit(parts._replace(netloc=netloc)), parts.netloc.rsplit("@", 1)[-1], extensions


def check_callback_url(url: str | None, settings: Settings) -> str | None:
    """The request-time check: a clear 422 instead of a webhook that can never be delivered."""
    if url is None:
        return None
    try:
        check_destination(url, settings)
    except Refused as exc:
        raise ApiError(422, f"callback_url: not accepted: {exc}.") from exc
    return url


# ---- secrets and signatures ---------------------------------------------------------------------------------

def secret_for(session: Session, user: User) -> str:
    """The user's webhook secret, made on first use."""
    if not user.webhook_secret:
        user.webhook_secret = "whsec_" + secrets.token_hex(24)
        session.commit()
    return user.webhook_secret


def rotate_secret(session: Session, user: User) -> str:
    user.webhook_secret = None
    return secret_for(session, user)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, headers: Any, body: bytes, tolerance_seconds: float = 300.0) -> bool:
    """The receiver's check: the signature matches and the timestamp is recent."""
    try:
        timestamp = int(headers[TIMESTAMP])
    except (KeyError, TypeError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_seconds:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), str(headers.get(SIGNATURE, "")))


# ---- events -------------------------------------------------------------------------------------------------

def _event(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(uuid.uuid4()), "type": f"{kind}.{data['status']}", "created_at": utcnow().isoformat(),
            "data": data}


def job_ended(session: Session, dispatcher: Dispatcher, kind: str, ident: int) -> bool:
    """Queue the delivery of a round's ("round") or generation's ("generation") end, if it asked for one.
    Call it after the end is committed. Never raises: a broker hiccup must not fail the job it reports."""
    try:
        row = session.get(Round if kind == "round" else Generation, ident)
        if row is None or not row.callback_url:
            return False
        session.refresh(row)
        if kind == "round":
            data, user_id = round_out(row).model_dump(mode="json"), row.style.user_id
        else:
            data, user_id = generation_out(row).model_dump(mode="json"), row.user_id
        dispatcher.deliver_webhook(user_id, row.callback_url, json.dumps(_event(kind, data)))
        return True
    except Exception:  # noqa: BLE001
        log.exception("could not queue the webhook of %s %s", kind, ident)
        return False


def jobs_ended(session: Session, dispatcher: Dispatcher, kind: str, idents: list[int]) -> None:
    for ident in idents:
        job_ended(session, dispatcher, kind, ident)


# ---- delivery -----------------------------------------------------------------------------------------------

def deliver(settings: Settings, session: Session, user_id: int | None, url: str, body: str) -> str:
    """One attempt. Returns "delivered" or "refused" (never to be retried); raises `DeliveryFailed` for an
    attempt worth retrying (network error, timeout, non-2xx answer, a redirect)."""
    import httpx

    try:
        addresses = check_destination(url, settings)
    except Refused as exc:
        log.warning("webhook to %s refused: %s", url, exc)
        return "refused"
    user = session.get(User, user_id) if user_id is not None else None
    if user is None:
        return "refused"
    payload = body.encode()
    timestamp = int(time.time())
    event = json.loads(body)
    headers = {"Content-Type": "application/json", "User-Agent": "StyleDrop-Studio-Webhooks/1",
               SIGNATURE: sign(secret_for(session, user), timestamp, payload), TIMESTAMP: str(timestamp),
               EVENT: event.get("type", ""), DELIVERY: event.get("id", "")}
    answer, failure = None, None
    with httpx.Client(follow_redirects=False, timeout=settings.webhook_timeout_seconds, trust_env=False) as client:
        for address in addresses:  # in the resolver's order, as a plain connect would try them
            target, headers["Host"], extensions = pinned(url, address)
            try:
                answer = client.post(target, content=payload, headers=headers, extensions=extensions)
                break
            except httpx.ConnectError as exc:
                failure = exc
            except httpx.HTTPError as exc:
                raise DeliveryFailed(f"{type(exc).__name__}: {exc}") from exc
    if answer is None:  # no address took the connection
        raise DeliveryFailed(f"{type(failure).__name__}: {failure}" if failure else "no address to connect to")
    if not 200 <= answer.status_code < 300:
        raise DeliveryFailed(f"the receiver answered {answer.status_code}")
    return "delivered"


class DeliveryFailed(Exception):
    """An attempt that may succeed later."""


def backoff_seconds(settings: Settings, attempt: int) -> float:
    """Wait before retry `attempt` (1, 2, ...): base, 2x base, 4x base, ... capped at an hour."""
    return min(settings.webhook_backoff_seconds * 2 ** (attempt - 1), 3600.0)
