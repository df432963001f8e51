"""Browser layer, end to end: the whole journey in a real browser: ``python app.py``, the
simulator, two phones.

A citizen dials the USSD code and books at PHC Saket for today; the booking SMS carries the
reference and the code; the vaccinator of that centre texts VERIFY and DOSE; the citizen's
final confirmation with the certificate ID arrives. Headless Debian Chromium, driven by
Playwright; a screenshot of the end is kept in ``test-artifacts/``.

Then anyone checks that certificate on the public page ``/verify`` from a phone-sized browser
with JavaScript off, in English and in Hindi (screenshots ``verify-en.png``, ``verify-hi.png``).
"""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from flows import lifecycle
from gateway.config import Settings
from gateway.sample import sample_data
from gateway.store import Store
from tests.app_process import ROOT, AppProcess

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts"
WAIT_MS = 15_000  # an SMS goes through the outbox worker; well under a second in practice

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="playwright is not installed (pip install -r requirements-dev.txt)",
)
if not Path(CHROMIUM).exists():
    pytest.skip(
        f"no Chromium at {CHROMIUM} (apt-get install chromium; .ci/run does)",
        allow_module_level=True,
    )
expect = sync_api.expect


@pytest.fixture
def gateway(redis_url, r, tmp_path):
    """``python app.py`` on a free loopback port, against the (flushed) test Redis."""
    app = AppProcess(
        tmp_path,
        REDIS_URL=redis_url,
        INSTANCE_PATH=str(tmp_path / "instance"),
        SECRET_KEY="browser-test-secret",
    ).start()
    yield app
    app.stop()


@pytest.fixture
def page():
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        yield page
        browser.close()


def _open_until_midnight(r) -> None:
    """Today's PHC Saket session gains a slot ending at midnight, so that the journey can
    book for today at any hour (a slot whose end has come is not offered)."""
    today = datetime.now(ZoneInfo("Asia/Kolkata")).date()
    session = next(s for s in sample_data(today, days=1)["sessions"] if s["centre_id"] == "C100")
    session["slots"].append({"time": "00:00-24:00", "capacity": 5})
    refused, _ = Store(r, Settings(secret_key="unused"), lifecycle).load_reference(
        {"centres": [], "sessions": [session], "vaccinators": []}
    )
    assert not refused


def test_booking_code_verify_dose_confirmation(gateway, page, r):
    assert "loaded demo data" in gateway.banner("Data")
    _open_until_midnight(r)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(gateway.base_url + "/simulator/")
    citizen, vaccinator = page.locator("#citizen"), page.locator("#vaccinator")
    expect(vaccinator.locator(".owner")).to_contain_text("PHC Saket")

    try:
        # The citizen books over USSD, answering each screen as a person would.
        citizen.locator(".dial").click()
        ending = _walk_booking(citizen)
        assert re.search(r"book|Ref", ending, re.I), ending

        # The booking SMS: reference and code.
        booked = citizen.locator(".inbox li", has_text="Code")
        expect(booked).to_have_count(1, timeout=WAIT_MS)
        text = booked.inner_text()
        assert "Asha Devi" in text and "PHC Saket" in text
        ref = re.search(r"Ref\s+([\d\s-]+?)\s+Code", text).group(1)
        code = re.search(r"Code\s+(\d{4})\b", text).group(1)

        # The vaccinator checks the code, then records the dose.
        _send_sms(vaccinator, f"VERIFY {ref} {code}")
        checked = vaccinator.locator(".inbox li").first
        expect(checked).to_contain_text("Asha Devi", timeout=WAIT_MS)
        expect(checked).to_contain_text("1990")
        _send_sms(vaccinator, f"DOSE {ref}")

        # The citizen's final confirmation, with the certificate ID.
        final = citizen.locator(".inbox li", has_text="Certificate ID")
        expect(final).to_have_count(1, timeout=WAIT_MS)
        assert re.search(r"Certificate ID\s+\S+", final.inner_text())
        expect(vaccinator.locator(".inbox li")).to_have_count(2, timeout=WAIT_MS)
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "simulator-journey.png"), full_page=True)
    assert not errors, errors


def test_with_a_webhook_token_the_simulator_needs_its_login_and_never_sees_the_token(
    redis_url, r, tmp_path, page
):
    token = "s3cret-token-for-the-webhooks"
    app = AppProcess(
        tmp_path,
        REDIS_URL=redis_url,
        INSTANCE_PATH=str(tmp_path / "instance"),
        SECRET_KEY="browser-test-secret" * 2,
        WEBHOOK_TOKEN=token,
        SIMULATOR_PASSWORD="correct horse battery",
        SIMULATOR_ENABLED="1",
    ).start()
    try:
        page.goto(app.base_url + "/simulator/")
        expect(page.locator("input[type=password]")).to_be_visible()  # the login, not phones
        page.fill("input[type=password]", "not the password")
        page.click("button[type=submit]")
        expect(page.locator(".error")).to_contain_text("Wrong password")
        page.fill("input[type=password]", "correct horse battery")
        page.click("button[type=submit]")

        citizen = page.locator("#citizen")
        citizen.locator(".dial").click()
        expect(citizen).to_have_attribute("data-ussd", "waiting", timeout=WAIT_MS)
        expect(citizen.locator(".ussd-screen")).to_contain_text("Book")
        assert token not in page.content()
        assert (
            app.post(
                "/ussd",
                {
                    "sessionId": "x",
                    "serviceCode": "*384*1#",
                    "phoneNumber": "+919811111111",
                    "text": "",
                },
            )[0]
            == 403
        )
        # Another browser (no cookie) reads no phone's SMS.
        assert app.get("/simulator/inbox?phone=%2B919811111111")[0] == 401
    finally:
        app.stop()


def test_a_certificate_is_checked_on_the_public_page_without_javascript(gateway, r):
    _open_until_midnight(r)
    store = Store(r, Settings(secret_key="browser-test-secret"), lifecycle)
    session_id = f"S100-{store.now():%Y%m%d}"
    ref = store.book(
        mobile="+919811111111", name="Ravi Kumar", birth_year=1985, session_id=session_id, slot=3
    ).value
    vaccinator = "+919800000001"
    assert store.verify(vaccinator=vaccinator, ref=ref, code=store.appointment(ref)["code"]).ok
    assert store.record_dose(vaccinator=vaccinator, ref=ref).ok
    cert = store.appointment(ref)["cert"]
    shown = f"{cert[:5]} {cert[5:10]} {cert[10:]}"

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        context = browser.new_context(
            viewport={"width": 390, "height": 844}, java_script_enabled=False, locale="en-IN"
        )
        page = context.new_page()
        try:
            page.goto(gateway.base_url + "/verify")
            typo = cert[:-1] + str((int(cert[-1]) + 1) % 10)
            page.fill("input[name=id]", typo)
            page.click("button[type=submit]")
            expect(page.locator(".refused")).to_contain_text("is not a certificate ID")

            page.fill("input[name=id]", shown)
            page.click("button[type=submit]")
            result = page.locator(".genuine")
            expect(result).to_contain_text("Genuine certificate")
            expect(result).to_contain_text("R**** K****")
            expect(result).to_contain_text("1985")
            expect(result).to_contain_text("COVISHIELD")
            expect(result).to_contain_text("1 of 2")
            expect(result).to_contain_text("PHC Saket")
            assert "Ravi" not in page.content()
            for part in ("input[name=id]", "button[type=submit]", ".genuine"):
                box = page.locator(part).bounding_box()
                assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, part
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "verify-en.png"), full_page=True)

            page.click("nav a")  # the language switch keeps the ID
            expect(page.locator(".genuine")).to_contain_text("असली प्रमाणपत्र")
            expect(page.locator("html")).to_have_attribute("lang", "hi")
            page.screenshot(path=str(ARTIFACTS / "verify-hi.png"), full_page=True)
        finally:
            browser.close()


def _send_sms(phone, text: str) -> None:
    phone.locator(".sms-text").fill(text)
    phone.locator(".sms-send").click()
    expect(phone.locator(".sms-status")).to_have_text("Sent.", timeout=WAIT_MS)


def _walk_booking(phone, max_hops: int = 15) -> str:
    """Answer the USSD screens until the session ends; the last screen."""
    history = []
    for hop in range(1, max_hops + 1):
        # Each answered hop bumps data-hops; then the phone waits for input or has hung up.
        expect(phone).to_have_attribute("data-hops", str(hop), timeout=WAIT_MS)
        expect(phone).to_have_attribute("data-ussd", re.compile("waiting|ended"))
        text = phone.locator(".ussd-screen").inner_text()
        history.append(text)
        if phone.get_attribute("data-ussd") == "ended":
            return text
        answer = _answer(text)
        assert answer is not None, "no answer for this screen:\n" + "\n---\n".join(history)
        phone.locator(".ussd-input").fill(answer)
        phone.locator(".ussd-send").click()
    raise AssertionError("booking did not end within the hops:\n" + "\n---\n".join(history))


def _options(text: str) -> list[tuple[str, str]]:
    return re.findall(r"^\s*(\d{1,2})[.):]?\s+(.+?)\s*$", text, re.M)


def _answer(text: str) -> str | None:
    """What a citizen booking for today at PHC Saket answers on this screen."""
    options = _options(text)
    today = datetime.now(ZoneInfo("Asia/Kolkata")).date()
    day_forms = [
        "today",
        today.isoformat(),
        f"{today.day} {today:%b}",
        f"{today:%d %b}",
        f"{today:%d/%m}",
        f"{today:%d-%m}",
        f"{today:%d.%m}",
    ]
    rules = [
        (lambda o: re.search(r"\bbook\b", o, re.I), None),
        (lambda o: "Saket" in o, None),
        (lambda o: any(form.lower() in o.lower() for form in day_forms), None),
        (lambda o: "-24:00" in o, None),
        (lambda o: re.search(r"confirm|\byes\b", o, re.I), None),
    ]
    for matches, _ in rules:
        for number, label in options:
            if matches(label):
                return number
    lower = text.lower()
    if "name" in lower:
        return "Asha Devi"
    if "year" in lower or "born" in lower:
        return "1990"
    if "pin" in lower:
        return "110017"
    return None
