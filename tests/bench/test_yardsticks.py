"""The bench's yardstick endpoints measure what they claim: the authenticated one passes the same gate as the API."""

from rest_framework.test import APIRequestFactory

from bench.views import AuthenticatedApi, BareApi

factory = APIRequestFactory()


def test_bare_endpoint_needs_no_key():
    response = BareApi.as_view()(factory.post("/bench/bare", {"token": "x"}, format="json"))
    assert response.status_code == 200


def test_authenticated_endpoint_refuses_a_call_without_an_api_key(db):
    response = AuthenticatedApi.as_view()(factory.post("/bench/authenticated", {"token": "x"}, format="json"))
    assert response.status_code == 401


def test_authenticated_endpoint_counts_against_the_providers_rate_limit(acme):
    acme.provider.rate_limit = "2/min"
    acme.provider.save()
    view = AuthenticatedApi.as_view()
    codes = [
        view(
            factory.post(
                "/bench/authenticated", {"token": "x"}, format="json", HTTP_AUTHORIZATION=f"Bearer {acme.api_key}"
            )
        ).status_code
        for _ in range(3)
    ]
    assert codes == [200, 200, 429]
