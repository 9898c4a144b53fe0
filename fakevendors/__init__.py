"""Local fake servers for the four real identity vendors (vendors.md), for tests and for demos without internet.

`python -m fakevendors` serves all four on loopback (see __main__); tests start them in-process on free ports.
"""

from __future__ import annotations

from importlib import import_module

FAKES = {
    "persona": "fakevendors.persona.FakePersona",
    "onfido": "fakevendors.onfido.FakeOnfido",
    "stripe_identity": "fakevendors.stripe_identity.FakeStripeIdentity",
    "veriff": "fakevendors.veriff.FakeVeriff",
}


def make(name: str, **kwargs):
    module_name, _, class_name = FAKES[name].rpartition(".")
    return getattr(import_module(module_name), class_name)(**kwargs)
