"""Webhook calls go to the address the SSRF check vetted, never to a second lookup (DNS
rebinding), with the Host header and TLS name of the URL."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from services.journey.ssrf import BlockedTarget, check_url, pin


def test_pin_keeps_what_the_server_and_tls_need() -> None:
    public = ipaddress.ip_address("93.184.216.34")
    assert pin("https://hooks.example.com:8443/in?x=1", public) == (
        "https://93.184.216.34:8443/in?x=1",
        {"Host": "hooks.example.com:8443"},
        {"sni_hostname": "hooks.example.com"},
    )
    v6 = ipaddress.ip_address("2606:2800:220:1::1")
    assert pin("http://u:p@hooks.example.com/in", v6) == (
        "http://u:p@[2606:2800:220:1::1]/in", {"Host": "hooks.example.com"}, {},
    )  # fmt: skip


def test_a_name_resolving_inside_is_refused_unless_allowed() -> None:
    inside = [ipaddress.ip_address("10.0.0.7")]
    with pytest.raises(BlockedTarget, match="internal address"):
        check_url("https://hooks.example.com/x", [], resolver=lambda h, p: inside)
    assert (
        check_url("https://hooks.example.com/x", ["10.0.0.0/8"], lambda h, p: inside) == (inside[0])
    )


@pytest.fixture
def local_server() -> Iterator[tuple[int, list[str]]]:
    hosts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            hosts.append(self.headers["Host"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], hosts
    finally:
        server.shutdown()
        server.server_close()


def test_the_call_goes_to_the_checked_address_without_a_second_lookup(
    local_server: tuple[int, list[str]],
) -> None:
    """`hooks.invalid` resolves nowhere (RFC 2606): the call can only succeed by connecting to
    the address the check was given."""
    port, hosts = local_server
    url = f"http://hooks.invalid:{port}/in"
    address = check_url(
        url, ["127.0.0.1/32"], resolver=lambda h, p: [ipaddress.ip_address("127.0.0.1")]
    )
    target, headers, extensions = pin(url, address)
    with httpx.Client() as client:  # what the webhook worker does, synchronously
        response = client.request(
            "POST", target, headers=headers, extensions=extensions, json={"a": 1}
        )
    assert response.status_code == 204
    assert hosts == [f"hooks.invalid:{port}"]
