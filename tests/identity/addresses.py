"""Clients the app sees coming from a given address (the shared clients all come from
127.0.0.1, httpx.ASGITransport's default): throttling counts per address."""

import httpx
from fastapi import FastAPI

from tests.auth import BASE_URL, AuditedTransport

# Documentation ranges (RFC 5737): an attacker's and the owner's machines.
ATTACKER = "203.0.113.7"
OWNER = "198.51.100.20"


def client_at(app: FastAPI, address: str) -> httpx.AsyncClient:
    transport = AuditedTransport(app, client=(address, 40_000))
    return httpx.AsyncClient(transport=transport, base_url=BASE_URL)
