"""Make the user guide's screenshots of the web page (queue and job, light and
dark) in Debian's headless Chromium, from a handful of made-up jobs:

    .venv/bin/python docs/images/make_screenshots.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
sys.path.insert(0, str(HERE.parent.parent / "tests"))

from chromium import CHROMEDRIVER, CHROMIUM, scheme  # noqa: E402

from benchmarks.web_cases import jobs, serve  # noqa: E402
from kbatch_dask.web.source import JobList  # noqa: E402


def main() -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    sample = jobs(14)[6:]  # four running, four ended
    url, loop = serve(JobList.of(sample))
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    with tempfile.TemporaryDirectory() as profile:
        for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--window-size=1200,640",
                     f"--user-data-dir={profile}"):  # fmt: skip
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        try:
            for name in ("light", "dark"):
                scheme(driver, name)
                driver.get(url)
                driver.save_screenshot(str(HERE / f"web-queue-{name}.png"))
                driver.get(f"{url}jobs/{sample[0]['id']}")
                driver.save_screenshot(str(HERE / f"web-job-{name}.png"))
        finally:
            driver.quit()
            loop.call_soon_threadsafe(loop.stop)


if __name__ == "__main__":
    main()
