"""One reading of the facts every vendor reports in its own way (issue 11: the four country normalisers and four
date parsers had drifted apart: Veriff knew Kosovo and the others did not; Onfido refused an alpha-2 code the others
took). A value that is not plainly one of these is no fact: None, never a guess.
"""

from __future__ import annotations

import re
from datetime import date

import pycountry

# Kosovo has no ISO 3166-1 code; "XK" is the user-assigned code used by the EU, the US, Veriff and most vendors, and
# passports issued there carry "RKS" (ICAO Doc 9303) or "XKX". pycountry knows none of them.
KOSOVO = "XK"
KOSOVO_ALPHA_3 = frozenset({"XKX", "RKS"})
EARLIEST_DATE = date(1850, 1, 1)  # before it, a date is a placeholder (Stripe's redacted 1-1-1), not a fact


def country_alpha2(value: object) -> str | None:
    """ISO 3166-1 alpha-2 (upper case) from an alpha-2 or alpha-3 code, or None for anything that is not a real code
    ("UK", "ZZ", "D<<", non-ASCII look-alikes, numbers)."""
    if not isinstance(value, str):
        return None
    code = value.strip().upper()
    if not re.fullmatch(r"[A-Z]{2,3}", code):
        return None
    if code == KOSOVO or code in KOSOVO_ALPHA_3:
        return KOSOVO
    try:
        country = pycountry.countries.get(**{"alpha_2" if len(code) == 2 else "alpha_3": code})
    except (KeyError, LookupError):
        return None
    return country.alpha_2 if country else None


def iso_date(value: object) -> date | None:
    """A calendar date from "YYYY-MM-DD" (a longer ISO timestamp is read for its date), or None."""
    if not isinstance(value, str) or not re.match(r"\d{4}-\d{2}-\d{2}", value):
        return None
    try:
        found = date.fromisoformat(value[:10])
    except ValueError:
        return None
    return plausible_date(found)


def plausible_date(found: date | None) -> date | None:
    return found if found is not None and found >= EARLIEST_DATE else None
