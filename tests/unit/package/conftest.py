"""Shared fixtures: an RSA key pair standing in for KSeF's, and small varied invoices."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from pipeline.ksef.package import InvoiceSource

Invoices = list[tuple[InvoiceSource, bytes]]


@pytest.fixture(scope="session")
def ksef_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="session")
def ksef_public_key(ksef_private_key: rsa.RSAPrivateKey) -> rsa.RSAPublicKey:
    return ksef_private_key.public_key()


def xml_invoice(number: int, lines: int = 20, seed: int = 0) -> bytes:
    """A compressible XML document with per-invoice variation (not FA(3)-valid; fast)."""
    rng = random.Random(seed * 1_000_003 + number)
    items = "".join(
        f"<Wiersz><Nr>{i}</Nr><Nazwa>towar {rng.randrange(10**6)}</Nazwa>"
        f"<Cena>{rng.randrange(10**5)}.{rng.randrange(100):02d}</Cena></Wiersz>"
        for i in range(lines)
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Faktura><P_2>FV/{seed}/{number}</P_2>'
        f"{items}</Faktura>"
    ).encode()


@pytest.fixture
def make_invoices() -> Callable[..., Invoices]:
    def make(count: int, *, lines: int = 20, seed: int = 0, topic: str = "sealed") -> Invoices:
        return [
            (InvoiceSource(topic, i % 3, 1000 + i), xml_invoice(i, lines, seed))
            for i in range(count)
        ]

    return make
