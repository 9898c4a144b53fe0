"""Helpers for the verification tests: sessions built through the real services, and a look at the evidence folder."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from attestations import services as attestation_services
from attestations.models import VerificationRequest
from tests import images
from verification import services
from verification.models import Evidence, VerificationSession
from verification.vendors.base import EvidenceKind


def evidence_files() -> list[Path]:
    """Every file under the evidence folder, however deep."""
    root = Path(settings.IDBROKER_EVIDENCE_DIR)
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@dataclass
class Opened:
    request: VerificationRequest
    session: VerificationSession

    def refresh(self) -> Opened:
        self.request.refresh_from_db()
        self.session.refresh_from_db()
        return self


def open_session(provider, *, now, claims=("age_over_18",)) -> Opened:
    """A request whose user consented at `now`: the state the capture pages work on."""
    request, _ = attestation_services.request_create(provider=provider, claims=list(claims), now=now)
    session = services.session_start(request=request, now=now)
    return Opened(request, session)


def store(opened: Opened, kind: EvidenceKind, *, now) -> Evidence:
    data = images.document_png() if kind == EvidenceKind.DOCUMENT_FRONT else images.selfie_jpeg()
    declared = "image/png" if kind == EvidenceKind.DOCUMENT_FRONT else "image/jpeg"
    return services.evidence_store(
        session=opened.session, kind=kind, fileobj=io.BytesIO(data), declared_type=declared, now=now
    )


def store_both(opened: Opened, *, now) -> list[Evidence]:
    return [store(opened, EvidenceKind.DOCUMENT_FRONT, now=now), store(opened, EvidenceKind.SELFIE, now=now)]
