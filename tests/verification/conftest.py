import pytest


@pytest.fixture(autouse=True)
def issuing_ready(request):
    """A verification starts only when the broker can issue (broker/readiness.py, issue 10 item 14): every database
    test here runs with an active signing key, as a set-up installation has (tests/test_setup.py plays without)."""
    if request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(request.fixturenames):
        request.getfixturevalue("signing_key")
