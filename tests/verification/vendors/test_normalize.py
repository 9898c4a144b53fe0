"""One reading of countries and dates for every vendor (verification/vendors/normalize.py). Before, four copies
disagreed: Kosovo was a fact at Veriff and unknown elsewhere, Onfido refused an alpha-2 code the others read."""

from datetime import date

import pytest

from verification.vendors import normalize

VENDOR_MODULES = ("dev", "persona", "onfido", "stripe_identity", "veriff")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("DE", "DE"),
        ("deu", "DE"),
        (" GBR ", "GB"),
        ("US", "US"),
        ("XK", "XK"),  # Kosovo: no ISO code; XK is the user-assigned code vendors and the EU use
        ("XKX", "XK"),
        ("RKS", "XK"),  # what ICAO passports issued in Kosovo carry
        ("UK", None),  # not ISO (GB is)
        ("ZZ", None),
        ("ZZZ", None),
        ("D<<", None),  # Germany in an MRZ: the vendor must normalise it, we do not guess
        ("DEUT", None),
        ("", None),
        ("Ｄｅ", None),  # full-width look-alikes
        (None, None),
        (276, None),
    ],
)
def test_a_country_code_is_read_the_same_for_every_vendor(value, expected):
    assert normalize.country_alpha2(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1990-02-28", date(1990, 2, 28)),
        ("2031-12-31T00:00:00Z", date(2031, 12, 31)),
        ("1990-02-30", None),
        ("0001-01-01", None),  # a placeholder, not a birth date
        ("19900228", None),  # not the format any vendor documents
        ("28/02/1990", None),
        ("", None),
        (None, None),
        (19900228, None),
    ],
)
def test_a_date_is_read_the_same_for_every_vendor(value, expected):
    assert normalize.iso_date(value) == expected


def test_no_vendor_keeps_a_country_or_date_parser_of_its_own():
    import inspect
    import re

    from verification import vendors

    for name in VENDOR_MODULES:
        module = __import__(f"{vendors.__name__}.{name}", fromlist=["_"])
        source = inspect.getsource(module)
        assert "pycountry" not in source, name
        assert not re.search(r"date\.fromisoformat|def _country|def alpha2", source), name
