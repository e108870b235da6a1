"""A real headless Chromium for the web page's tests: Debian's ``chromium`` and
``chromium-driver`` (installed by .ci/run), driven by Selenium with both paths
given, so that Selenium Manager never runs and nothing is downloaded. One
browser for the whole run; each test starts from a clean slate of cookies
(:func:`fresh`). Tests skip, saying why, only where the browser is missing."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT = 30.0  # seconds a page has to show what a test waits for
T = TypeVar("T")


@pytest.fixture(scope="session")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        pytest.skip(f"no headless Chromium: {' and '.join(missing)} missing (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    os.environ["SE_OFFLINE"] = "true"  # belt and braces: never fetch a driver
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def fresh(driver: Any) -> Any:
    """The browser with no cookies of any earlier test (nobody logged in anywhere)."""
    driver.execute_cdp_cmd("Network.clearBrowserCookies", {})
    scheme(driver, "light")
    return driver


def scheme(driver: Any, name: str) -> None:
    """Make pages see ``prefers-color-scheme: name``."""
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": name}]}
    )


def until(what: Callable[[], T], message: str, timeout: float = WAIT) -> T:
    """Poll ``what`` until it returns something true; fail with ``message`` at ``timeout``."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    deadline = time.monotonic() + timeout
    while True:
        try:
            value = what()
        except (NoSuchElementException, StaleElementReferenceException):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (after {timeout:.0f} s)")
        time.sleep(0.1)


def text(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def no_alert_ran(driver: Any) -> None:
    """No script of a job's name or log ran (its onerror would have raised an alert)."""
    from selenium.common.exceptions import NoAlertPresentException

    try:
        alert = driver.switch_to.alert
    except NoAlertPresentException:
        return
    raise AssertionError(f"a script of the page's data ran: alert {alert.text!r}")


def screenshot(driver: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(path))
