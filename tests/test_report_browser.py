"""The report in a real browser: headless Chromium (Debian's chromium and chromium-driver, which
.ci/run installs) opens report.html with the network off and must see no console errors, every
picture decoded, no request but the file itself and its data: URIs, and nothing wider than the
page; for a 3-feature and a 20-feature run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import INCOME, MALL_ID, SPENDING, invoke, load_mall, run_json

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
MARKETING = [
    "Income", "Recency", "MntWines", "MntFruits", "MntMeatProducts", "MntFishProducts", "MntSweetProducts",
    "MntGoldProds", "NumDealsPurchases", "NumWebPurchases", "NumCatalogPurchases", "NumStorePurchases",
    "NumWebVisitsMonth", "Kidhome", "Teenhome",
]  # fmt: skip

pytestmark = pytest.mark.slow  # starts chromedriver and chromium


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    assert not missing, f"{missing} not installed: apt-get install chromium chromium-driver (.ci/run does)"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)  # no driver download
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _report(url: str, run_id: int, out: Path) -> Path:
    result = invoke(url, "report", str(run_id), "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.stderr
    return out / "report.html"


def _open_offline(driver, page: Path) -> dict:
    """Load `page` with the network off; returns what the page showed (see the script)."""
    driver.get_log("browser")  # drop what earlier pages logged
    driver.get_log("performance")
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
    )
    driver.get(page.as_uri())
    return driver.execute_script(
        """
        const page = document.documentElement.clientWidth;
        const scrolls = (element) => {
            for (let e = element.parentElement; e; e = e.parentElement) {
                const overflow = getComputedStyle(e).overflowX;
                if (overflow === 'auto' || overflow === 'scroll') return true;
            }
            return false;
        };
        const wide = [...document.body.querySelectorAll('*')]
            .filter((e) => !scrolls(e) && e.getBoundingClientRect().right > page + 1)
            .map((e) => e.tagName + (e.className ? '.' + e.className : ''));
        return {
            ready: document.readyState,
            images: [...document.images].map((i) => ({complete: i.complete, width: i.naturalWidth})),
            pageWidth: page,
            scrollWidth: document.documentElement.scrollWidth,
            wide: wide,
        };
        """
    )


def _requests(driver) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def _check(driver, page: Path, pictures: int) -> dict:
    seen = _open_offline(driver, page)
    assert seen["ready"] == "complete"
    assert len(seen["images"]) == pictures
    assert all(image["complete"] and image["width"] > 0 for image in seen["images"]), seen["images"]
    assert seen["scrollWidth"] <= seen["pageWidth"], seen
    assert seen["wide"] == [], seen["wide"]
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    requests = _requests(driver)
    assert requests and all(url.startswith(("file:", "data:")) for url in requests), requests
    return seen


def test_three_feature_report_in_chromium(browser, migrated_db_url, tmp_path):
    load_mall(migrated_db_url)
    run = run_json(migrated_db_url, "--source", "mall", "--id", MALL_ID, "--features", f"Age,{INCOME},{SPENDING}")
    seen = _check(browser, _report(migrated_db_url, run["run_id"], tmp_path / "three"), pictures=6)
    assert seen["pageWidth"] > 1000  # the 1280-pixel window, so "wider than the page" means something


def test_twenty_feature_report_in_chromium(browser, migrated_db_url, tmp_path, data_dir):
    loaded = invoke(migrated_db_url, "load-csv", str(data_dir / "marketing_campaign.csv"), "--table", "marketing")
    assert loaded.exit_code == 0, loaded.stderr
    run = run_json(
        migrated_db_url, "--source", "marketing", "--id", "ID", "--features", ",".join(MARKETING),
        "--categorical", "Education", "--missing", "median", "--k", "4", "--quiet",
    )  # fmt: skip
    assert len(run["features"]) == 16  # 15 numeric + Education: 5 levels, 20 model columns
    page = _report(migrated_db_url, run["run_id"], tmp_path / "twenty")
    assert page.read_text(encoding="utf-8").count("Education=") >= 5
    _check(browser, page, pictures=4)  # --k 4: no K sweep, so no elbow or criteria pictures
