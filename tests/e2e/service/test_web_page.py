"""The service's web page in a real headless Chromium, logged in through the
real hub with OAuth: alice sees her running job with its dashboard link live,
follows its log, cancels it (after a confirmation) and sees CANCELLED arrive
without a reload, resubmits it and lands on the new job's page; cancel and
resubmit need the XSRF token; bob sees none of it (and cannot resubmit it); a job
named with HTML and a log line of HTML render as text."""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import pytest
from chromium import fresh, no_alert_ran, text, until
from conftest import wait_for

from .conftest import PREFIX, Service, User, run
from .test_service import show, submit

pytestmark = pytest.mark.gateway

XSS_NAME = "<img src=x onerror=alert(1)>"
LOUD = """\
import time
from dask.distributed import get_client

get_client().wait_for_workers(1, timeout=60)
print("<b>bold</b><script>alert(2)</script>", flush=True)
for n in range(1, 2000):
    print(f"tick {n}", flush=True)
    time.sleep(0.3)
"""


def log_in(browser: Any, service: Service, name: str) -> Any:
    """Open the page as nobody: the hub's login (the dummy authenticator), then back on the page."""
    from selenium.webdriver.common.by import By

    browser = fresh(browser)
    browser.get(service.url)
    until(lambda: browser.find_elements(By.NAME, "username"), "the hub's login page")
    assert browser.current_url.startswith(f"http://127.0.0.1:{service.hub.port}/hub/")
    browser.find_element(By.NAME, "username").send_keys(name)
    browser.find_element(By.NAME, "password").send_keys("any")
    browser.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    until(lambda: browser.current_url.startswith(service.url), "back on the service's page")
    assert text(browser, ".who").startswith(name)
    return browser


def test_alice_follows_her_job_and_cancels_it_and_bob_sees_none_of_it(
    service: Service, alice: User, bob: User, chromium: Any
) -> None:
    from selenium.webdriver.common.by import By

    (alice.home / "loud.py").write_text(LOUD)
    job_id = submit(alice, "loud.py", LOUD, "--dask-workers", "1", "-J", XSS_NAME)
    wait_for(lambda: (show(alice, job_id)["dask"] or {}).get("dashboard"), timeout=120, what="the job's dashboard")

    browser = log_in(chromium, service, "alice")
    row = f'tr[data-id="{job_id}"]'
    until(lambda: browser.find_elements(By.CSS_SELECTOR, row), "her job in the queue")
    assert text(browser, f"{row} .name") == XSS_NAME and not browser.find_elements(By.CSS_SELECTOR, "img")
    assert "RUNNING" in text(browser, f"{row} .state")
    link = until(lambda: browser.find_elements(By.CSS_SELECTOR, f"{row} .dashboard a"), "the dashboard link")[0]
    assert link.get_attribute("href") == show(alice, job_id)["dask"]["dashboard"]

    browser.find_element(By.CSS_SELECTOR, f"{row} a").click()
    until(lambda: "tick 2" in text(browser, "#log"), "the log, followed")
    assert "<b>bold</b><script>alert(2)</script>" in text(browser, "#log")
    no_alert_ran(browser)

    # Without JupyterHub's XSRF token the login cookie counts for nothing: refused, nothing cancelled.
    forged = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {method: 'POST', body: new URLSearchParams({confirmed: '1'})}).then(r => done(r.status));",
        f"{service.url}jobs/{job_id}/cancel",
    )
    assert forged == 403 and show(alice, job_id)["state"] == "RUNNING"

    # Resubmit, while it runs (a cancel deletes its Job, and the snapshot with it): refused
    # without the XSRF token; asked, then the new job's page.
    jobs = len(service.objects("jobs"))
    assert post(browser, f"{service.url}jobs/{job_id}/resubmit", xsrf=False) == 403
    assert len(service.objects("jobs")) == jobs
    browser.find_element(By.CSS_SELECTOR, "#resubmit button").click()
    until(lambda: browser.switch_to.alert, "the resubmit's confirmation").accept()
    # The URL, not the element: it may be the old page's, gone in the middle of a call.
    until(lambda: not browser.current_url.endswith(f"/jobs/{job_id}"), "the new job's page")
    again = browser.current_url.rsplit("/", 1)[1]
    until(lambda: browser.find_elements(By.CSS_SELECTOR, f'#job[data-id="{again}"]'), "the new job's page, loaded")
    assert browser.current_url == f"{service.url}jobs/{again}" and text(browser, "#job h1 .name") == XSS_NAME
    browser.get(f"{service.url}jobs/{job_id}")
    until(lambda: "tick" in text(browser, "#log"), "the first job's log again")

    browser.find_element(By.CSS_SELECTOR, "#cancel button").click()
    until(lambda: browser.switch_to.alert, "the confirmation").accept()
    until(lambda: text(browser, "#job-state") == "CANCELLED", "CANCELLED, without a reload")
    assert not browser.find_element(By.ID, "cancel").is_displayed()
    no_alert_ran(browser)

    assert run(alice, "cancel", again).returncode == 0

    browser = log_in(chromium, service, "bob")
    until(lambda: browser.find_element(By.ID, "jobs").get_attribute("data-total") is not None, "bob's queue")
    assert not browser.find_elements(By.CSS_SELECTOR, row) and job_id not in browser.page_source
    assert post(browser, f"{service.url}jobs/{job_id}/resubmit", xsrf=True) == 404  # as for a missing job
    browser.get(f"{service.url}jobs/{job_id}")
    assert text(browser, "h1") == "404" and XSS_NAME not in browser.page_source


def post(browser: Any, url: str, *, xsrf: bool) -> int:
    """A confirmed POST from the page's own script, with the page's XSRF token or without; its status."""
    return int(
        browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "const headers = arguments[1] ? {'X-XSRFToken': document.body.dataset.xsrf} : {};"
            "fetch(arguments[0], {method: 'POST', headers, body: new URLSearchParams({confirmed: '1'})})"
            ".then(r => done(r.status));",
            url,
            xsrf,
        )
    )


def test_the_page_without_a_login_sends_to_the_hub_and_serves_nothing(service: Service) -> None:
    class Keep(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None  # look at the redirect itself

    with pytest.raises(urllib.error.HTTPError) as sent:
        urllib.request.build_opener(Keep).open(service.url, timeout=10)
    assert sent.value.code == 302
    assert sent.value.headers["Location"].startswith(f"http://127.0.0.1:{service.hub.port}/hub/api/oauth2/authorize")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{service.url}?format=json", timeout=10)
    assert refused.value.code == 403 and b"jobs" not in refused.value.read()
    assert "script-src 'self'" in refused.value.headers["Content-Security-Policy"]
    assert PREFIX in service.url
