import pytest

from auditor.services import auditor_grant
from tests.auditor.scenario import build
from tests.conftest import otp_verified


@pytest.fixture
def scenario(acme, globex, signing_key, now):
    return build(acme, globex, now=now)


@pytest.fixture
def auditor_user(db):
    user, _ = auditor_grant(username="audrey")
    return user


@pytest.fixture
def auditor_client(client, auditor_user):
    """An auditor signed in as the admin login leaves them: password and TOTP second factor verified."""
    return otp_verified(client, auditor_user)
