"""Deterministic, realistic FA(3) invoices for tests, benchmarks and the demo.

Every invoice from `make_invoice` validates against the FA(3) XSD; the same arguments
always give the same bytes (so hashes, duplicates and benchmarks are reproducible).
`bad_invoices` gives at least one input per rejection reason, each failing for that
reason alone.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import ROUND_HALF_UP, Decimal
from xml.sax.saxutils import escape

from pipeline.ksef.fa3.schema import FA3_NAMESPACE
from pipeline.ksef.numbers import nip_with_checksum

PROFILES = ("small", "typical", "large")
KINDS = ("VAT", "KOR", "ZAL", "ROZ", "UPR", "KOR_ZAL", "KOR_ROZ")

# Line items per profile, chosen so the documents come out near 4 KB, 12 KB, 240 KB.
_LINES = {"small": 6, "typical": 25, "large": 645}
_CENT = Decimal("0.01")
_RATES = {"23": Decimal("0.23"), "8": Decimal("0.08"), "5": Decimal("0.05")}
# P_13_x / P_14_x pairs for each rate, in schema order.
_RATE_FIELDS = (("23", "1"), ("8", "2"), ("5", "3"))

_COMPANIES = (
    "Przedsiębiorstwo Handlowe Żuraw Sp. z o.o.",
    "Zakład Energetyczny Północ S.A.",
    "Hurtownia Spożywcza Łania Sp. j.",
    "Telekomunikacja Śląska Sp. z o.o.",
    "Wodociągi Miejskie Gródek Sp. z o.o.",
    "Biuro Rachunkowe Źródło s.c.",
    "Drukarnia Ćma Sp. k.",
    "Gazownia Mazowiecka S.A.",
)
_STREETS = (
    "ul. Żółkiewskiego",
    "ul. Marszałkowska",
    "al. Jerozolimskie",
    "ul. Świętokrzyska",
    "ul. Łąkowa",
    "ul. Piłsudskiego",
    "ul. Grunwaldzka",
)
_CITIES = (
    ("00-950", "Warszawa"),
    ("30-001", "Kraków"),
    ("80-803", "Gdańsk"),
    ("50-011", "Wrocław"),
    ("90-001", "Łódź"),
    ("61-001", "Poznań"),
)
_GOODS = (
    ("Energia elektryczna czynna, taryfa G11, strefa całodobowa", "kWh", "23"),
    ("Opłata dystrybucyjna zmienna sieciowa", "kWh", "23"),
    ("Abonament telekomunikacyjny, pakiet biznesowy", "szt.", "23"),
    ("Woda zimna z sieci wodociągowej", "m3", "8"),
    ("Odprowadzanie ścieków bytowych", "m3", "8"),
    ("Książka: Podstawy rachunkowości, wydanie 4", "szt.", "5"),
    ("Usługa serwisowa urządzeń chłodniczych", "h", "23"),
    ("Pieczywo mieszane, dostawa poranna", "kg", "5"),
    ("Gaz ziemny wysokometanowy, grupa E", "kWh", "8"),
    ("Licencja oprogramowania księgowego, 12 miesięcy", "szt.", "23"),
)


def seller_nips(count: int, seed: int = 0) -> list[str]:
    """`count` distinct NIPs with valid checksums that also match the XSD's NIP pattern."""
    rng = random.Random(f"seller-nips|{seed}")
    found: list[str] = []
    seen: set[str] = set()
    while len(found) < count:
        first9 = f"{rng.randint(1, 9)}{rng.randint(1, 99):02d}{rng.randint(0, 999_999):06d}"
        nip = nip_with_checksum(first9)
        if nip is not None and nip not in seen:
            seen.add(nip)
            found.append(nip)
    return found


def make_invoice(
    *,
    seller_nip: str,
    number: str,
    issue_date: dt.date,
    profile: str = "typical",
    buyer_nip: str | None = None,
    kind: str = "VAT",
    seed: int = 0,
    attachment: bool = False,
) -> bytes:
    """One FA(3) invoice as UTF-8 bytes with an XML declaration; valid against the XSD.

    `buyer_nip=None` makes a consumer (no-NIP) buyer. `kind` is the RodzajFaktury; the
    correction kinds carry the data of the corrected invoice.
    """
    if profile not in _LINES:
        raise ValueError(f"profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    return render_invoice(
        seller_nip=seller_nip,
        number=number,
        issue_date=issue_date,
        lines=_LINES[profile],
        buyer_nip=buyer_nip,
        kind=kind,
        seed=seed,
        attachment=attachment,
        rich=profile != "small",
    )


def render_invoice(
    *,
    seller_nip: str,
    number: str,
    issue_date: dt.date,
    lines: int,
    buyer_nip: str | None = None,
    kind: str = "VAT",
    seed: int = 0,
    attachment: bool = False,
    rich: bool = True,
) -> bytes:
    """`make_invoice` with an explicit number of line items (1..10000)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if not 1 <= lines <= 10_000:
        raise ValueError(f"an FA(3) invoice has 1..10000 lines, asked for {lines}")
    rng = random.Random(f"{seller_nip}|{number}|{issue_date}|{kind}|{seed}")
    items = [_line_item(rng, i + 1, issue_date) for i in range(lines)]
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<Faktura xmlns="{FA3_NAMESPACE}">\n',
        _header(issue_date),
        _seller(rng, seller_nip),
        _buyer(rng, buyer_nip),
        _fa(rng, number, issue_date, kind, items, rich),
    ]
    if rich:
        parts.append(_footer(rng))
    if attachment:
        parts.append(_attachment(rng, issue_date))
    parts.append("</Faktura>\n")
    return "".join(parts).encode("utf-8")


def _x(text: str) -> str:
    return escape(text)


def _header(issue_date: dt.date) -> str:
    created = max(issue_date, dt.date(2021, 10, 1))
    return (
        "  <Naglowek>\n"
        '    <KodFormularza kodSystemowy="FA (3)" wersjaSchemy="1-0E">FA</KodFormularza>\n'
        "    <WariantFormularza>3</WariantFormularza>\n"
        f"    <DataWytworzeniaFa>{created.isoformat()}T08:15:00Z</DataWytworzeniaFa>\n"
        "    <SystemInfo>ksef-pipeline samples</SystemInfo>\n"
        "  </Naglowek>\n"
    )


def _block(indent: str, tag: str, *children: tuple[str, str]) -> str:
    inner = "".join(f"{indent}  <{name}>{value}</{name}>\n" for name, value in children)
    return f"{indent}<{tag}>\n{inner}{indent}</{tag}>\n"


def _address(rng: random.Random, indent: str) -> str:
    code, city = rng.choice(_CITIES)
    street = f"{rng.choice(_STREETS)} {rng.randint(1, 250)}/{rng.randint(1, 40)}"
    return _block(
        indent,
        "Adres",
        ("KodKraju", "PL"),
        ("AdresL1", _x(street)),
        ("AdresL2", f"{code} {_x(city)}"),
    )


def _contact(rng: random.Random, indent: str) -> str:
    return _block(
        indent,
        "DaneKontaktowe",
        ("Email", f"faktury{rng.randint(1, 99)}@example.pl"),
        ("Telefon", f"+48{rng.randint(500_000_000, 899_999_999)}"),
    )


def _seller(rng: random.Random, nip: str) -> str:
    return (
        "  <Podmiot1>\n"
        "    <DaneIdentyfikacyjne>\n"
        f"      <NIP>{_x(nip)}</NIP>\n"
        f"      <Nazwa>{_x(rng.choice(_COMPANIES))}</Nazwa>\n"
        "    </DaneIdentyfikacyjne>\n"
        f"{_address(rng, '    ')}"
        f"{_contact(rng, '    ')}"
        "  </Podmiot1>\n"
    )


def _buyer(rng: random.Random, nip: str | None) -> str:
    if nip is None:
        ident = "      <BrakID>1</BrakID>\n      <Nazwa>Jan Kowalski</Nazwa>\n"
    else:
        ident = f"      <NIP>{_x(nip)}</NIP>\n      <Nazwa>{_x(rng.choice(_COMPANIES))}</Nazwa>\n"
    return (
        "  <Podmiot2>\n"
        "    <DaneIdentyfikacyjne>\n"
        f"{ident}"
        "    </DaneIdentyfikacyjne>\n"
        f"{_address(rng, '    ')}"
        f"    <NrKlienta>K/{rng.randint(10_000, 99_999)}</NrKlienta>\n"
        "    <JST>2</JST>\n"
        "    <GV>2</GV>\n"
        "  </Podmiot2>\n"
    )


class _Item:
    __slots__ = ("gross", "net", "rate", "xml")

    def __init__(self, xml: str, rate: str, net: Decimal, gross: Decimal) -> None:
        self.xml, self.rate, self.net, self.gross = xml, rate, net, gross


def _line_item(rng: random.Random, ordinal: int, issue_date: dt.date) -> _Item:
    name, unit, rate = rng.choice(_GOODS)
    quantity = Decimal(rng.randint(1, 4000)) / (1 if unit == "szt." else 10)
    price = (Decimal(rng.randint(5, 250_000)) / 100).quantize(_CENT)
    net = (quantity * price).quantize(_CENT, ROUND_HALF_UP)
    gross = net + (net * _RATES[rate]).quantize(_CENT, ROUND_HALF_UP)
    xml = (
        "    <FaWiersz>\n"
        f"      <NrWierszaFa>{ordinal}</NrWierszaFa>\n"
        f"      <UU_ID>{rng.getrandbits(128):032x}</UU_ID>\n"
        f"      <P_6A>{issue_date.isoformat()}</P_6A>\n"
        f"      <P_7>{_x(name)}</P_7>\n"
        f"      <Indeks>IDX-{rng.randint(100_000, 999_999)}</Indeks>\n"
        f"      <P_8A>{_x(unit)}</P_8A>\n"
        f"      <P_8B>{quantity}</P_8B>\n"
        f"      <P_9A>{price}</P_9A>\n"
        f"      <P_11>{net}</P_11>\n"
        f"      <P_12>{rate}</P_12>\n"
        "    </FaWiersz>\n"
    )
    return _Item(xml, rate, net, gross)


def _totals(items: list[_Item]) -> tuple[str, Decimal]:
    out: list[str] = []
    total = Decimal(0)
    for rate, suffix in _RATE_FIELDS:
        net = sum((i.net for i in items if i.rate == rate), Decimal(0))
        vat = (net * _RATES[rate]).quantize(_CENT, ROUND_HALF_UP)
        total += net + vat
        if net:
            out.append(f"    <P_13_{suffix}>{net}</P_13_{suffix}>\n")
            out.append(f"    <P_14_{suffix}>{vat}</P_14_{suffix}>\n")
    return "".join(out), total


_ANNOTATIONS = (
    "    <Adnotacje>\n"
    "      <P_16>2</P_16>\n"
    "      <P_17>2</P_17>\n"
    "      <P_18>2</P_18>\n"
    "      <P_18A>2</P_18A>\n"
    "      <Zwolnienie>\n        <P_19N>1</P_19N>\n      </Zwolnienie>\n"
    "      <NoweSrodkiTransportu>\n        <P_22N>1</P_22N>\n      </NoweSrodkiTransportu>\n"
    "      <P_23>2</P_23>\n"
    "      <PMarzy>\n        <P_PMarzyN>1</P_PMarzyN>\n      </PMarzy>\n"
    "    </Adnotacje>\n"
)


def _correction(rng: random.Random, issue_date: dt.date) -> str:
    corrected = issue_date - dt.timedelta(days=rng.randint(5, 60))
    return (
        "    <PrzyczynaKorekty>Błędna ilość w pozycji faktury</PrzyczynaKorekty>\n"
        "    <TypKorekty>2</TypKorekty>\n"
        "    <DaneFaKorygowanej>\n"
        f"      <DataWystFaKorygowanej>{corrected.isoformat()}</DataWystFaKorygowanej>\n"
        f"      <NrFaKorygowanej>FV/{rng.randint(1, 9999)}/{corrected:%m/%Y}</NrFaKorygowanej>\n"
        "      <NrKSeFN>1</NrKSeFN>\n"
        "    </DaneFaKorygowanej>\n"
    )


def _fa(
    rng: random.Random,
    number: str,
    issue_date: dt.date,
    kind: str,
    items: list[_Item],
    rich: bool,
) -> str:
    totals, total = _totals(items)
    parts = [
        "  <Fa>\n",
        "    <KodWaluty>PLN</KodWaluty>\n",
        f"    <P_1>{issue_date.isoformat()}</P_1>\n",
        f"    <P_1M>{_x(rng.choice(_CITIES)[1])}</P_1M>\n",
        f"    <P_2>{_x(number)}</P_2>\n",
        f"    <P_6>{issue_date.isoformat()}</P_6>\n",
        totals,
        f"    <P_15>{total}</P_15>\n",
        _ANNOTATIONS,
        f"    <RodzajFaktury>{kind}</RodzajFaktury>\n",
    ]
    if kind.startswith("KOR"):
        parts.append(_correction(rng, issue_date))
    if rich:
        parts.append(
            "    <DodatkowyOpis>\n"
            "      <Klucz>Numer umowy</Klucz>\n"
            f"      <Wartosc>UM/{rng.randint(1000, 9999)}/{issue_date.year}</Wartosc>\n"
            "    </DodatkowyOpis>\n"
        )
    parts.extend(i.xml for i in items)
    parts.append(_payment(rng, issue_date, rich))
    parts.append("  </Fa>\n")
    return "".join(parts)


def _payment(rng: random.Random, issue_date: dt.date, rich: bool) -> str:
    due = issue_date + dt.timedelta(days=14)
    account = "".join(str(rng.randint(0, 9)) for _ in range(26))
    bank = (
        "      <RachunekBankowy>\n"
        f"        <NrRB>{account}</NrRB>\n"
        "        <SWIFT>BPKOPLPW</SWIFT>\n"
        "        <NazwaBanku>Bank Przykładowy S.A.</NazwaBanku>\n"
        "      </RachunekBankowy>\n"
        if rich
        else ""
    )
    return (
        "    <Platnosc>\n"
        f"      <TerminPlatnosci>\n        <Termin>{due.isoformat()}</Termin>\n"
        "      </TerminPlatnosci>\n"
        "      <FormaPlatnosci>6</FormaPlatnosci>\n"
        f"{bank}"
        "    </Platnosc>\n"
    )


def _footer(rng: random.Random) -> str:
    return (
        "  <Stopka>\n"
        "    <Informacje>\n"
        "      <StopkaFaktury>Dziękujemy za terminową płatność. Reklamacje prosimy zgłaszać "
        "w ciągu 14 dni od daty doręczenia faktury.</StopkaFaktury>\n"
        "    </Informacje>\n"
        "    <Rejestry>\n"
        f"      <KRS>{rng.randint(0, 9_999_999_999):010d}</KRS>\n"
        f"      <REGON>{rng.randint(0, 999_999_999):09d}</REGON>\n"
        "    </Rejestry>\n"
        "  </Stopka>\n"
    )


def _attachment(rng: random.Random, issue_date: dt.date) -> str:
    rows = "".join(
        "          <Wiersz>\n"
        f"            <WKom>{issue_date - dt.timedelta(days=30 - day)}</WKom>\n"
        f"            <WKom>{rng.randint(100, 9_999)}</WKom>\n"
        "          </Wiersz>\n"
        for day in range(30)
    )
    return (
        "  <Zalacznik>\n"
        "    <BlokDanych>\n"
        "      <ZNaglowek>Odczyty licznika</ZNaglowek>\n"
        "      <MetaDane>\n"
        "        <ZKlucz>Numer licznika</ZKlucz>\n"
        f"        <ZWartosc>L-{rng.randint(100_000, 999_999)}</ZWartosc>\n"
        "      </MetaDane>\n"
        "      <Tekst>\n"
        "        <Akapit>Dzienne zużycie energii w okresie rozliczeniowym.</Akapit>\n"
        "      </Tekst>\n"
        "      <Tabela>\n"
        "        <TNaglowek>\n"
        '          <Kol Typ="date">\n            <NKom>Dzień</NKom>\n          </Kol>\n'
        '          <Kol Typ="int">\n            <NKom>Zużycie [kWh]</NKom>\n          </Kol>\n'
        "        </TNaglowek>\n"
        f"{rows}"
        "      </Tabela>\n"
        "    </BlokDanych>\n"
        "  </Zalacznik>\n"
    )


def _wrong_check_digit(nip: str) -> str:
    return nip[:9] + str((int(nip[9]) + 1) % 10)


def bad_invoices(today: dt.date) -> list[tuple[str, bytes]]:
    """(expected reason, bytes) pairs covering every reason `InvoiceChecker.check` gives.

    Each input is wrong in one way only, so the expected reason is unambiguous when
    checked with `attachments_allowed=False` and the same `today`.
    """
    seller, buyer = seller_nips(2, seed=7)

    def invoice(number: str, issue_date: dt.date = today, attachment: bool = False) -> bytes:
        return make_invoice(
            seller_nip=seller, buyer_nip=buyer, number=number, issue_date=issue_date,
            profile="small", attachment=attachment,
        )

    good = invoice("FV/BAD/1")
    text = good.decode("utf-8")
    marker = "ksef-pipeline samples"  # the SystemInfo text, present in every sample

    def with_text(replacement: str) -> bytes:
        return text.replace(marker, replacement).encode("utf-8")

    def replaced(old: bytes, new: bytes) -> bytes:
        if old not in good:
            raise AssertionError(f"sample lost its {old!r}")
        return good.replace(old, new, 1)

    declaration_end = b"?>\n"
    junk = random.Random("junk").randbytes(4096)
    oversized = render_invoice(
        seller_nip=seller, buyer_nip=buyer, number="FV/BIG/1", issue_date=today, lines=2_900
    )
    return [
        ("not-xml", b""),
        ("not-xml", b" \r\n\t "),
        ("not-xml", b"this is not an invoice"),
        ("not-xml", b'{"invoice": "FV/1", "amount": 100}'),
        ("not-xml", b"\x89PNG\r\n\x1a\n" + junk),
        ("not-xml", good[: len(good) // 2]),
        ("not-xml", replaced(b"</P_2>", b"</P_3>")),
        ("too-large", junk * 1280),  # 5 MB of binary junk
        ("too-large", oversized),
        ("bom", b"\xef\xbb\xbf" + good),
        ("encoding", text.encode("utf-16")),  # with its BOM, as Python writes it
        ("encoding", text.replace('"UTF-8"', '"ISO-8859-2"').encode("iso-8859-2")),
        ("encoding", replaced(b'encoding="UTF-8"', b'encoding="windows-1250"')),
        ("encoding", with_text("Zak\u0142ad").replace("Zakład".encode(), b"Zak\xb3ad")),
        ("encoding", with_text("x").replace(b"<SystemInfo>x", b"<SystemInfo>\xc5x")),
        ("encoding", text.encode("utf-16-le")),
        (
            "processing-instruction",
            replaced(declaration_end, declaration_end + b'<?xml-stylesheet href="fa.xsl"?>\n'),
        ),
        ("processing-instruction", replaced(b"<P_2>", b"<?billing batch=7?><P_2>")),
        ("processing-instruction", good + b"<?trailer x?>\n"),
        ("forbidden-character", with_text("system\u0080info")),
        ("forbidden-character", with_text("system\ufdd0info")),
        ("forbidden-character", with_text("system\U0001fffeinfo")),
        ("forbidden-character", with_text("system\x01info")),
        ("forbidden-character", with_text("system&#x1;info")),  # a reference to one
        ("forbidden-character", with_text("system&#133;&#134;info")),  # NEL passes, U+0086 not
        ("doctype", replaced(declaration_end, declaration_end + b"<!DOCTYPE Faktura>\n")),
        ("schema", replaced(FA3_NAMESPACE.encode(), b"http://crd.gov.pl/wzor/2023/06/29/12648/")),
        ("schema", b'<?xml version="1.0" encoding="UTF-8"?>\n<Invoice><Id>1</Id></Invoice>\n'),
        ("schema", replaced(b"<P_2>FV/BAD/1</P_2>", b"")),
        ("schema", replaced(b"<KodWaluty>PLN</KodWaluty>", b"<KodWaluty>PLZ</KodWaluty>")),
        ("schema", replaced(seller.encode(), b"0123456789")),
        ("nip-checksum", replaced(seller.encode(), _wrong_check_digit(seller).encode())),
        ("nip-checksum", replaced(buyer.encode(), _wrong_check_digit(buyer).encode())),
        ("issue-date-in-future", invoice("FV/BAD/2", issue_date=today + dt.timedelta(days=1))),
        ("attachments-not-allowed", invoice("FV/BAD/3", attachment=True)),
    ]
