"""The web app's bounds on requests: what it refuses before any route runs, and the cheap
checks on a body before it is parsed.

- **Size.** A body is read up to its limit and no further: 2 MB for an upload, 64 kB for JSON.
- **DNS rebinding.** A page on evil.example can make its own name resolve to 127.0.0.1 and
  then talk to a server on this machine as if it were same-origin. Such requests still carry
  `Host: evil.example`, so a server bound to loopback answers only a Host that names this
  machine (localhost, 127.0.0.1, [::1], or the bound address; any port): 421 otherwise.
- **Cross-origin POSTs.** A page elsewhere can POST a form to us (a "simple" request needs no
  CORS preflight). Browsers say where a request comes from in `Origin` (or, in older ones,
  only `Sec-Fetch-Site`); a POST from another origin is refused with 403. Requests that carry
  neither (curl, scripts) are not a browser acting for another site, and stay allowed.
- **Uploads.** A multipart form is parsed from the body already read (and size-checked),
  with at most one file and ten fields.
- **JSON nesting.** `json.loads` recurses once per level and a few thousand levels raise
  RecursionError, so the depth is counted over the bytes first, skipping string contents.
"""

from __future__ import annotations

import ipaddress
import json
import re
from urllib.parse import urlsplit

from starlette.datastructures import Headers, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from digitlab.i18n import _

MAX_BODY = 2 * 1024 * 1024  # bytes; a drawing is a few kB, a phone photo rarely more than this
MAX_JSON_BODY = 64 * 1024  # bytes; 28x28 full-precision floats, indented, are about 25 kB
MAX_JSON_DEPTH = 8  # levels of [ and {; {"pixels": [[...]]} needs 3
THIS_MACHINE = frozenset({"localhost", "127.0.0.1", "[::1]"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# A Host header: a name, an IPv4 address or a bracketed IPv6 address, and an optional port.
HOST_HEADER = re.compile(r"(\[[0-9a-fA-F:.]+\]|[^\[\]:/@\s]+)(?::\d{1,5})?")
JSON_SYNTAX = re.compile(rb'[][{}"\\]')
OPEN, CLOSE, QUOTE, BACKSLASH = frozenset(b"[{"), frozenset(b"]}"), ord('"'), ord("\\")


class PayloadTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit = limit  # bytes


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body, reading at most limit + 1 bytes; PayloadTooLarge beyond limit."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise PayloadTooLarge(limit)
        except ValueError:
            raise HTTPException(400, _("invalid Content-Length header")) from None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def replay(request: Request, body: bytes) -> Request:
    """A copy of the request whose body stream yields `body` (already read, size-checked)."""
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(request.scope, receive)


async def upload_bytes(request: Request, body: bytes, content_type: str, refusal: str) -> bytes:
    """The uploaded image: multipart field `file`, or a raw image body; 415 (`refusal`, which
    says what the route takes) for any other content type."""
    if content_type == "multipart/form-data":
        form = await replay(request, body).form(max_files=1, max_fields=10)
        try:
            item = form.get("file")
            if not isinstance(item, UploadFile):
                raise HTTPException(422, _("send the image as multipart form field 'file'"))
            return await item.read()
        finally:
            await form.close()
    if content_type.startswith("image/") or content_type == "application/octet-stream":
        return body  # a raw image body, e.g. curl --data-binary @digit.png
    raise HTTPException(415, refusal)


def parse_json(body: bytes):
    """UTF-8 JSON text -> its value; HTTPException(422) when it is not JSON or nests deeper
    than MAX_JSON_DEPTH (checked first: json.loads recurses once per level)."""
    try:
        text = body.decode("utf-8")  # RFC 8259; and the depth scan is exact only for UTF-8
    except UnicodeDecodeError:
        raise HTTPException(422, _("the body is not valid JSON (UTF-8)")) from None
    if nesting_exceeds(body, MAX_JSON_DEPTH):
        raise HTTPException(422, _("the JSON nests deeper than {depth} levels").format(
            depth=MAX_JSON_DEPTH))
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # ValueError: also an integer of over 4300 digits
        raise HTTPException(422, _("the body is not valid JSON (UTF-8)")) from None


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def allowed_hosts(bind_host: str) -> frozenset[str] | None:
    """The Host names a server bound to `bind_host` answers; None (any) off loopback, where
    whoever can reach the address may use it anyway."""
    if not is_loopback(bind_host):
        return None
    return THIS_MACHINE | {f"[{bind_host}]" if ":" in bind_host else bind_host.lower()}


def host_name(header: str) -> str | None:
    """'LocalHost:8000' -> 'localhost'; '[::1]:80' -> '[::1]'; None when malformed."""
    match = HOST_HEADER.fullmatch(header.strip())
    return match.group(1).lower() if match else None


def nesting_exceeds(body: bytes, max_depth: int) -> bool:
    """Whether JSON text (UTF-8) nests arrays and objects deeper than max_depth. Brackets
    inside strings do not count; a multi-byte UTF-8 character never contains these bytes."""
    depth, in_string, skip_to = 0, False, -1
    for match in JSON_SYNTAX.finditer(body):
        at = match.start()
        if at < skip_to:  # the character after a backslash inside a string
            continue
        char = body[at]
        if in_string:
            if char == BACKSLASH:
                skip_to = at + 2
            elif char == QUOTE:
                in_string = False
        elif char == QUOTE:
            in_string = True
        elif char in OPEN:
            depth += 1
            if depth > max_depth:
                return True
        elif char in CLOSE:
            depth -= 1
    return False


class RequestGuard:
    """ASGI middleware: the Host check on loopback, then the same-origin check on writes."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str] | None) -> None:
        self.app = app
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(Headers(scope=scope), scope["method"])
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, headers: Headers, method: str) -> JSONResponse | None:
        host = headers.get("host", "")
        if self.hosts is not None and host_name(host) not in self.hosts:
            return JSONResponse({"detail": _(
                "this server answers only requests addressed to localhost, 127.0.0.1 or "
                "[::1], not to {host}; open it by one of those names, or start it with "
                "--host to serve others").format(host=host[:100] or "?")}, status_code=421)
        if method not in SAFE_METHODS and not same_origin(headers, host):
            return JSONResponse({"detail": _(
                "cross-origin request refused: send it from this server's own page, or "
                "without an Origin header (curl, scripts)")}, status_code=403)
        return None


def same_origin(headers: Headers, host: str) -> bool:
    """Whether a write comes from this server's own page or from no browser page at all.
    The scheme is not compared: behind a TLS proxy the page is https and we see http."""
    origin = headers.get("origin")
    if origin is None:  # older browsers send only Sec-Fetch-Site; scripts send neither
        return headers.get("sec-fetch-site", "same-origin") in ("same-origin", "none")
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    return bool(netloc) and netloc.lower() == host.strip().lower()
