"""Journey layer (the web app, real Redis): the public check at /verify: a form and its
result, in English or Hindi, no JavaScript, limited per client address, never a 500."""

from __future__ import annotations

import re
from html import unescape

import pytest

from flows import certificate
from gateway import codes
from tests.test_certificates import on, vaccinated


def visible(response) -> str:
    """The page's text as a reader sees it: tags dropped, spaces collapsed."""
    html = response.get_data(as_text=True)
    body = re.sub(r"<head>.*?</head>", " ", html, flags=re.S)
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", body)).split())


def test_the_form_works_without_javascript(client):
    response = client.get("/verify")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert '<form method="get" action="/verify">' in html and 'name="id"' in html
    assert "<script" not in html and "script-src" not in response.headers["Content-Security-Policy"]
    assert 'name="viewport"' in html
    assert "Check a vaccination certificate" in visible(response)
    assert client.get("/verify/static/verify.css").status_code == 200
    assert client.get("/verify/static/simulator.js").status_code == 404  # its own files only


def test_a_genuine_certificate_shows_what_it_certifies_masked(client, sample, store):
    _, cert = vaccinated(client, store)
    response = client.get("/verify", query_string={"id": codes.format_certificate(cert)})
    assert response.status_code == 200
    text = visible(response)
    assert "Genuine certificate" in text
    for shown in (
        codes.format_certificate(cert),
        "Name A**** D****",
        "Born 1990",
        "Vaccine COVISHIELD",
        "Dose 1 of 2",
        f"Date {on(store)}",
        "Centre PHC Saket",
    ):
        assert shown in text, shown
    assert "Asha" not in text and "Devi" not in text


def test_hindi_by_link_or_by_the_browser(client, sample, store):
    _, cert = vaccinated(client, store)
    english = client.get("/verify", query_string={"id": cert})
    assert f'href="/verify?lang=hi&amp;id={cert}"' in english.get_data(as_text=True)
    by_link = visible(client.get("/verify", query_string={"id": cert, "lang": "hi"}))
    by_browser = visible(
        client.get("/verify", query_string={"id": cert}, headers={"Accept-Language": "hi-IN"})
    )
    for text in (by_link, by_browser):
        assert "असली प्रमाणपत्र" in text and "नाम A**** D****" in text
        assert "खुराक 2 में से 1" in text
    assert 'lang="hi"' in client.get("/verify?lang=hi").get_data(as_text=True)


@pytest.mark.parametrize(
    "typed, status, says",
    [
        ("", 400, "Please type a certificate ID."),
        ("12345", 400, "12345 is not a certificate ID."),
        ("x" * 5000, 400, "is not a certificate ID."),
        ("<script>alert(1)</script>", 400, "<script>alert(1)</script is not a certificate ID."),
        ("१२३", 400, "is not a certificate ID."),
        ("1234567890", 400, "12345 67890 is a booking ref."),
        ("100000000000000", 200, "NOT GENUINE: no certificate has the ID 10000 00000 00000."),
    ],
)
def test_bad_input_gets_a_clear_message_never_a_500(client, r, typed, status, says):
    assert codes.parse_certificate("100000000000000")  # a valid check digit, no certificate
    response = client.get("/verify", query_string={"id": typed})
    assert response.status_code == status
    assert says in visible(response)
    assert "<script>alert" not in response.get_data(as_text=True)


def test_junk_urls_and_methods_are_answered_plainly(client, r):
    assert client.get("/verify?id=%ff%fe").status_code == 400
    assert client.get("/verify?id=1&id=2").status_code == 400
    assert client.post("/verify", data={"id": "1"}).status_code == 405
    assert client.get("/verify?lang=xx").status_code == 200


def test_lookups_are_limited_per_client_address(client, sample, store, clock):
    _, cert = vaccinated(client, store)
    here, there = {"REMOTE_ADDR": "203.0.113.7"}, {"REMOTE_ADDR": "198.51.100.9"}
    for _ in range(certificate.WEB_LOOKUPS):
        assert client.get(f"/verify?id={cert}", environ_base=here).status_code == 200
    typo = client.get(f"/verify?id={cert[:-1]}{(int(cert[-1]) + 1) % 10}", environ_base=here)
    assert typo.status_code == 400  # typos never reach a lookup, so they are never limited
    refused = client.get(f"/verify?id={cert}", environ_base=here)
    assert refused.status_code == 429
    assert "Too many checks from your network. Please try again in 60 min." in visible(refused)
    assert client.get(f"/verify?id={cert}", environ_base=there).status_code == 200
    clock.advance(3600)
    assert client.get(f"/verify?id={cert}", environ_base=here).status_code == 200
