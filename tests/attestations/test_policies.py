"""Predicate evaluation (SPEC 4), the one place that decides what a fact means for a claim on a given day."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from attestations import policies
from attestations.models import JurisdictionPolicy
from attestations.policies import StoredFacts
from tests.attestations.support import FACTS
from verification.vendors.base import Check

ADULT = FACTS  # an adult German passport holder
LEAPLING = date(2008, 2, 29)


def policy(mode: str, applies_to: str, countries: list[str], *, slug="p", version=1) -> JurisdictionPolicy:
    return JurisdictionPolicy(slug=slug, mode=mode, applies_to=applies_to, countries=countries, version=version)


def facts(**changes) -> StoredFacts:
    return replace(ADULT, **changes)


# --- Age -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("today", "age"),
    [
        (date(2026, 2, 27), 17),
        (date(2026, 2, 28), 17),  # a common year has no 29 February: not yet 18 ...
        (date(2026, 3, 1), 18),  # ... until 1 March
        (date(2028, 2, 28), 19),
        (date(2028, 2, 29), 20),  # in a leap year the birthday itself counts
        (date(2028, 3, 1), 20),
    ],
)
def test_someone_born_on_a_leap_day_ages_on_the_first_of_march_in_common_years(today, age):
    assert policies.age_on(LEAPLING, today) == age


def test_born_2008_02_29_is_18_on_2026_03_01_and_not_on_2026_02_28():
    leapling = facts(date_of_birth=LEAPLING)
    assert policies.age_over(leapling, 18, date(2026, 3, 1)) is True
    assert policies.age_over(leapling, 18, date(2026, 2, 28)) is False


@pytest.mark.parametrize(
    ("today", "over_18"),
    [
        (date(2026, 6, 14), False),  # the day before the 18th birthday
        (date(2026, 6, 15), True),  # the birthday itself
        (date(2026, 6, 16), True),
        (date(2025, 12, 31), False),
        (date(2027, 1, 1), True),
    ],
)
def test_a_threshold_is_reached_on_the_birthday_not_the_day_before(today, over_18):
    assert policies.age_over(facts(date_of_birth=date(2008, 6, 15)), 18, today) is over_18


def test_a_birthday_late_in_the_year_is_counted_by_month_and_day_not_by_year():
    born = date(2008, 12, 31)
    assert policies.age_on(born, date(2026, 12, 30)) == 17
    assert policies.age_on(born, date(2026, 12, 31)) == 18
    assert policies.age_on(born, date(2027, 1, 1)) == 18


def test_an_unknown_birth_date_answers_no_age_question():
    assert policies.age_over(facts(date_of_birth=None), 13, date(2026, 1, 1)) is None


# --- Jurisdiction ----------------------------------------------------------------------------------------------------

# A US national holding a Cuban-issued document: the two facts disagree, so which one a policy reads matters.
SPLIT = facts(nationality="US", issuing_country="CU")


@pytest.mark.parametrize(
    ("mode", "applies_to", "countries", "eligible"),
    [
        ("allow", "nationality", ["US"], True),
        ("allow", "issuing_country", ["US"], False),
        ("allow", "both", ["US"], False),  # an allow-list needs every checked country listed
        ("allow", "both", ["US", "CU"], True),
        ("allow", "nationality", ["CU"], False),
        ("allow", "issuing_country", ["CU"], True),
        ("deny", "nationality", ["CU"], True),
        ("deny", "issuing_country", ["CU"], False),
        ("deny", "both", ["CU"], False),  # a deny-list refuses if any checked country is listed
        ("deny", "both", ["US"], False),
        ("deny", "both", ["KP", "IR"], True),
        ("deny", "nationality", ["US"], False),
        ("allow", "both", [], False),  # an empty allow-list allows nobody
        ("deny", "both", [], True),  # an empty deny-list denies nobody
    ],
)
def test_allow_and_deny_lists_apply_to_nationality_issuing_country_or_both(mode, applies_to, countries, eligible):
    assert policies.jurisdiction_eligible(SPLIT, policy(mode, applies_to, countries)) is eligible


def test_country_codes_are_compared_without_regard_to_case():
    lower = facts(nationality="us", issuing_country="us")
    assert policies.jurisdiction_eligible(lower, policy("allow", "both", ["US"])) is True
    assert policies.jurisdiction_eligible(ADULT, policy("deny", "both", ["de"])) is False


@pytest.mark.parametrize("mode", ["allow", "deny"])
@pytest.mark.parametrize("applies_to", ["nationality", "both"])
def test_an_unknown_nationality_is_neither_eligible_nor_ineligible(mode, applies_to):
    stateless = facts(nationality=None, issuing_country="DE")
    # A deny-list that does not list DE would otherwise let an unknown nationality through; an allow-list that
    # lists DE would otherwise refuse someone who may be eligible. Neither is said.
    rule = policy(mode, applies_to, ["DE", "FR"] if mode == "allow" else ["KP"])
    assert policies.jurisdiction_eligible(stateless, rule) is None


def test_an_unknown_issuing_country_cannot_be_answered_when_it_is_checked():
    unknown = facts(issuing_country=None)
    assert policies.jurisdiction_eligible(unknown, policy("deny", "issuing_country", ["KP"])) is None
    assert policies.jurisdiction_eligible(unknown, policy("deny", "both", ["KP"])) is None


def test_a_known_fact_that_already_decides_is_answered_despite_an_unknown_one():
    stateless = facts(nationality=None, issuing_country="KP")
    assert policies.jurisdiction_eligible(stateless, policy("deny", "both", ["KP"])) is False
    assert policies.jurisdiction_eligible(stateless, policy("allow", "both", ["DE"])) is False


def test_an_unknown_fact_the_policy_does_not_read_does_not_matter():
    stateless = facts(nationality=None, issuing_country="DE")
    assert policies.jurisdiction_eligible(stateless, policy("deny", "issuing_country", ["KP"])) is True
    assert policies.jurisdiction_eligible(stateless, policy("allow", "issuing_country", ["DE"])) is True


# --- Document and human -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expiry", "authentic", "valid"),
    [
        (date(2026, 6, 15), Check.PASS, True),  # valid through its expiry day
        (date(2026, 6, 14), Check.PASS, False),  # expired yesterday
        (date(2030, 1, 1), Check.PASS, True),
        (date(2030, 1, 1), Check.FAIL, False),
        (date(2030, 1, 1), Check.UNKNOWN, None),  # authenticity must be shown, not merely not disproved
        (None, Check.PASS, None),
        (date(2026, 6, 14), Check.UNKNOWN, False),  # expired decides, whatever authenticity was
    ],
)
def test_a_document_is_valid_only_when_authentic_and_unexpired(expiry, authentic, valid):
    document = facts(document_expiry=expiry, document_authentic=authentic)
    assert policies.document_valid(document, date(2026, 6, 15)) is valid


@pytest.mark.parametrize(
    ("liveness", "face_match", "human"),
    [
        (Check.PASS, Check.PASS, True),
        (Check.PASS, Check.FAIL, False),
        (Check.FAIL, Check.PASS, False),
        (Check.PASS, Check.UNKNOWN, None),  # not reported by the vendor (Stripe has no liveness result)
        (Check.UNKNOWN, Check.PASS, None),
        (Check.UNKNOWN, Check.UNKNOWN, None),
        (Check.UNKNOWN, Check.FAIL, False),
    ],
)
def test_verified_human_needs_both_liveness_and_face_match_to_pass(liveness, face_match, human):
    assert policies.verified_human(facts(liveness=liveness, face_match=face_match)) is human


# --- evaluate ------------------------------------------------------------------------------------------------------


def test_evaluate_returns_exactly_the_requested_claims():
    rule = policy("deny", "both", ["KP"], slug="export-tier1", version=3)
    today = date(2026, 6, 15)
    assert policies.evaluate(["age_over_21"], ADULT, policy=rule, today=today) == {"age_over_21": True}
    every = ["age_over_13", "age_over_25", "eligible_jurisdiction", "document_valid", "verified_human"]
    assert policies.evaluate(every, ADULT, policy=rule, today=today) == {
        "age_over_13": True,
        "age_over_25": True,
        "eligible_jurisdiction": {"policy": "export-tier1", "version": 3, "eligible": True},
        "document_valid": True,
        "verified_human": True,
    }
    assert policies.evaluate([], ADULT, policy=rule, today=today) == {}


def test_evaluate_states_false_predicates_as_false_and_adds_no_reason():
    minor = facts(date_of_birth=date(2010, 1, 1), nationality="KP", document_expiry=date(2020, 1, 1))
    rule = policy("deny", "both", ["KP"], slug="export-tier1")
    claims = ["age_over_18", "eligible_jurisdiction", "document_valid"]
    assert policies.evaluate(claims, minor, policy=rule, today=date(2026, 6, 15)) == {
        "age_over_18": False,
        "eligible_jurisdiction": {"policy": "export-tier1", "version": 1, "eligible": False},
        "document_valid": False,
    }


def test_evaluate_computes_age_on_the_day_it_is_given():
    leapling = facts(date_of_birth=LEAPLING)
    assert policies.evaluate(["age_over_18"], leapling, policy=None, today=date(2026, 2, 28)) == {"age_over_18": False}
    assert policies.evaluate(["age_over_18"], leapling, policy=None, today=date(2026, 3, 1)) == {"age_over_18": True}


@pytest.mark.parametrize("claim", ["date_of_birth", "nationality", "age_over_", "age_over_eighteen", "AGE_OVER_18"])
def test_an_unsupported_claim_raises(claim):
    with pytest.raises(ValueError, match="unsupported claim"):
        policies.evaluate(["age_over_18", claim], ADULT, policy=None, today=date(2026, 1, 1))


def test_eligible_jurisdiction_without_a_policy_raises():
    with pytest.raises(ValueError, match="policy"):
        policies.evaluate(["eligible_jurisdiction"], ADULT, policy=None, today=date(2026, 1, 1))


def test_supported_claims_follow_the_configured_age_thresholds(settings):
    settings.IDBROKER_AGE_THRESHOLDS = (18, 65)
    assert policies.supported_claims() == [
        "age_over_18",
        "age_over_65",
        "eligible_jurisdiction",
        "document_valid",
        "verified_human",
    ]
    assert policies.is_supported_claim("age_over_65") and not policies.is_supported_claim("age_over_21")


def test_stored_facts_survive_a_json_round_trip():
    for stored in (ADULT, facts(date_of_birth=None, nationality=None, document_expiry=None, liveness=Check.UNKNOWN)):
        assert StoredFacts.from_json(stored.to_json()) == stored


def test_a_predicate_that_cannot_be_answered_is_left_out_not_stated():
    licence = facts(nationality=None, issuing_country="US", liveness=Check.UNKNOWN)
    rule = policy("deny", "nationality", ["KP"])
    values = policies.evaluate(
        ["age_over_18", "eligible_jurisdiction", "verified_human"], licence, policy=rule, today=date(2026, 1, 1)
    )
    assert values == {"age_over_18": True}
