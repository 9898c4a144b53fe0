"""The one home for predicate evaluation (SPEC 4): what a fact means for a claim, on a given day.

A predicate that needs a fact the vendor did not return is not answered at all: `evaluate` leaves it out of the
token, so an unknown is stated neither as a yes nor as a false "no" about the person. A predicate whose facts are
known and say no is stated as false, and nothing in the token says why (SPEC 4: "nothing else explains why").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from django.conf import settings

from verification.vendors.base import Check

AGE_CLAIM = re.compile(r"^age_over_(\d{1,3})$")
STATIC_CLAIMS = ("eligible_jurisdiction", "document_valid", "verified_human")


@dataclass(frozen=True)
class StoredFacts:
    """The minimal facts kept after a decision (SPEC 3.5). Lives only sealed in the database and in memory."""

    date_of_birth: date | None
    nationality: str | None
    issuing_country: str | None
    document_type: str
    document_expiry: date | None
    document_authentic: Check
    liveness: Check
    face_match: Check

    def to_json(self) -> dict:
        return {
            "date_of_birth": self.date_of_birth.isoformat() if self.date_of_birth else None,
            "nationality": self.nationality,
            "issuing_country": self.issuing_country,
            "document_type": self.document_type,
            "document_expiry": self.document_expiry.isoformat() if self.document_expiry else None,
            "document_authentic": str(self.document_authentic),
            "liveness": str(self.liveness),
            "face_match": str(self.face_match),
        }

    @classmethod
    def from_json(cls, data: dict) -> StoredFacts:
        def day(value):
            return date.fromisoformat(value) if value else None

        return cls(
            date_of_birth=day(data["date_of_birth"]),
            nationality=data["nationality"],
            issuing_country=data["issuing_country"],
            document_type=data["document_type"],
            document_expiry=day(data["document_expiry"]),
            document_authentic=Check(data["document_authentic"]),
            liveness=Check(data["liveness"]),
            face_match=Check(data["face_match"]),
        )


def supported_claims() -> list[str]:
    return [f"age_over_{n}" for n in settings.IDBROKER_AGE_THRESHOLDS] + list(STATIC_CLAIMS)


def is_supported_claim(name: str) -> bool:
    return name in supported_claims()


def age_on(birth: date, today: date) -> int:
    """Completed years. Someone born on 29 February turns a year older on 1 March in common years."""
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


# Each predicate answers True, False, or None: "cannot say", when the answer depends on a fact the vendor did not
# return (Stripe reads no nationality; a vendor may report no liveness result). A None predicate is not asserted:
# `evaluate` leaves it out of the token, so an unknown is never stated as true, nor as a false "no" about a person
# who may well qualify. Anything a known fact already decides is answered.


def age_over(facts: StoredFacts, threshold: int, today: date) -> bool | None:
    if facts.date_of_birth is None:
        return None
    return age_on(facts.date_of_birth, today) >= threshold


def jurisdiction_eligible(facts: StoredFacts, policy) -> bool | None:
    """Apply an allow- or deny-list to nationality and/or issuing country."""
    checked = {
        "nationality": [facts.nationality],
        "issuing_country": [facts.issuing_country],
        "both": [facts.nationality, facts.issuing_country],
    }[policy.applies_to]
    known = [code.upper() for code in checked if code is not None]
    listed = {c.upper() for c in policy.countries}
    decided_no = any(c not in listed for c in known) if policy.mode == "allow" else any(c in listed for c in known)
    if decided_no:
        return False
    return None if len(known) < len(checked) else True


def document_valid(facts: StoredFacts, today: date) -> bool | None:
    if facts.document_authentic == Check.FAIL or (facts.document_expiry is not None and facts.document_expiry < today):
        return False
    if facts.document_authentic == Check.PASS and facts.document_expiry is not None:
        return True
    return None


def verified_human(facts: StoredFacts) -> bool | None:
    checks = (facts.liveness, facts.face_match)
    if Check.FAIL in checks:
        return False
    return True if all(c == Check.PASS for c in checks) else None


def evaluate(claims: list[str], facts: StoredFacts, *, policy, today: date) -> dict:
    """Return {claim: value} for the requested claims that the facts can answer (see above: None is left out)."""
    out: dict = {}
    for claim in claims:
        if match := AGE_CLAIM.match(claim):
            value = age_over(facts, int(match.group(1)), today)
        elif claim == "eligible_jurisdiction":
            if policy is None:
                raise ValueError("eligible_jurisdiction needs a policy assigned to the provider")
            eligible = jurisdiction_eligible(facts, policy)
            value = (
                None if eligible is None else {"policy": policy.slug, "version": policy.version, "eligible": eligible}
            )
        elif claim == "document_valid":
            value = document_valid(facts, today)
        elif claim == "verified_human":
            value = verified_human(facts)
        else:
            raise ValueError(f"unsupported claim {claim!r}")
        if value is not None:
            out[claim] = value
    return out


def describe_claim(claim: str, policy=None) -> dict:
    """Plain words for the consent and result pages: what the provider learns, as a yes/no question."""
    if match := AGE_CLAIM.match(claim):
        text = f"Whether you are {match.group(1)} or older"
    elif claim == "eligible_jurisdiction":
        name = f"“{policy.slug}”" if policy else "its"
        text = f"Whether your nationality and the country that issued your ID are eligible under the {name} policy"
    elif claim == "document_valid":
        text = "Whether your ID document is genuine and not expired"
    elif claim == "verified_human":
        text = "Whether your selfie is of a live person who matches the photo on your ID"
    else:
        text = claim
    return {"name": claim, "text": text}
