"""The report in a real browser: headless Chromium (Debian's chromium and chromium-driver, which
.ci/run installs) opens report.html in a 1280x900 window with the network off and must see no
console errors, every picture decoded with its alt text and caption, no request but the file itself
and its data: URIs, nothing wider than the page, no text cut off by its box, and the first segment
card on the first screen; for a 3-feature and a 20-feature run and for the three shared datasets
as a new user runs them (screenshots in SCREENSHOTS)."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from helpers import INCOME, MALL_ID, SPENDING, invoke, load_mall, run_json

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
WINDOW = (1280, 900)
SCREENSHOTS = Path(tempfile.gettempdir()) / "segjob-report-screenshots"
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
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size={WINDOW[0]},{WINDOW[1]}"):
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
        // Text cut off by its own box: content wider or taller than the box shows, in any element
        // that holds text and is not a scroll container (those show the rest when scrolled).
        const scrollable = (e) => ['auto', 'scroll'].includes(getComputedStyle(e).overflowX);
        const clipped = [...document.body.querySelectorAll('h1, h2, h3, p, th, td, figcaption, section, div')]
            .filter((e) => e.clientWidth > 0 && !scrollable(e))
            .filter((e) => e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1)
            .map((e) => e.tagName + ': ' + e.textContent.trim().slice(0, 80));
        const card = document.querySelector('section.card');
        let firstCard = null;
        if (card) {
            const box = card.getBoundingClientRect();
            const heading = card.querySelector('h3').getBoundingClientRect();
            const seen = document.elementFromPoint(heading.left + 2, heading.top + heading.height / 2);
            firstCard = {top: box.top, headingBottom: heading.bottom, headingShown: card.contains(seen)};
        }
        return {
            ready: document.readyState,
            images: [...document.images].map((i) => ({complete: i.complete, width: i.naturalWidth, alt: i.alt})),
            captions: [...document.querySelectorAll('figure')].map((f) =>
                (f.querySelector('figcaption') || {textContent: ''}).textContent.trim()),
            pageWidth: page,
            scrollWidth: document.documentElement.scrollWidth,
            wide: wide,
            clipped: clipped,
            firstCard: firstCard,
            scrollY: window.scrollY,
            viewportHeight: window.innerHeight,
            windowSize: [window.outerWidth, window.outerHeight],
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
    assert all(image["alt"].strip() for image in seen["images"]), seen["images"]
    assert len(seen["captions"]) == pictures and all(seen["captions"]), seen["captions"]
    assert seen["scrollWidth"] <= seen["pageWidth"], seen
    assert seen["wide"] == [], seen["wide"]
    assert seen["clipped"] == [], seen["clipped"]
    # The segment cards come first: the first card's heading is on the first screen, not covered.
    assert seen["windowSize"] == list(WINDOW) and seen["scrollY"] == 0
    card = seen["firstCard"]
    assert card is not None and card["headingShown"], card
    assert 0 < card["top"] and card["headingBottom"] <= min(WINDOW[1], seen["viewportHeight"]), card
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


def _screenshots(driver, page: Path, name: str) -> list[Path]:
    """The first screen as the window shows it, and the whole page (the window made as tall as the
    page for the shot, then put back)."""
    SCREENSHOTS.mkdir(exist_ok=True)
    first, whole = SCREENSHOTS / f"{name}.png", SCREENSHOTS / f"{name}-full.png"
    assert driver.get_screenshot_as_file(str(first))
    height = driver.execute_script("return document.documentElement.scrollHeight")
    try:
        driver.set_window_size(WINDOW[0], height + WINDOW[1])
        assert driver.get_screenshot_as_file(str(whole))
    finally:
        driver.set_window_size(*WINDOW)
    return [first, whole]


# The three shared datasets (tests/data/README.md) as a new user runs them: default options.
SHARED = {
    "mall": ("mall_customers.csv", "CustomerID", [INCOME, SPENDING], []),
    "marketing": ("marketing_campaign.csv", "ID", MARKETING, ["--categorical", "Education", "--missing", "median"]),
    "telco": ("telco_customer_churn.csv", "customerID", ["tenure", "MonthlyCharges", "TotalCharges"], []),
}


@pytest.mark.parametrize("name", SHARED)
def test_shared_datasets_show_segment_cards_first(browser, sqlite_template, tmp_path, data_dir, name):
    url = f"sqlite:///{tmp_path / 'segjob.db'}"
    shutil.copyfile(sqlite_template, tmp_path / "segjob.db")
    csv, id_column, features, extra = SHARED[name]
    loaded = invoke(url, "load-csv", str(data_dir / csv), "--table", name)
    assert loaded.exit_code == 0, loaded.stderr
    run = run_json(url, "--source", name, "--id", id_column, "--features", ",".join(features), *extra, "--quiet")
    page = _report(url, run["run_id"], tmp_path / name)
    seen = _check(browser, page, pictures=6)
    assert len(_screenshots(browser, page, name)) == 2
    html = page.read_text(encoding="utf-8")
    assert html.count('<section class="card"') == run["k"] == len(run["segments"])
    if name == "telco":  # the gap statistic names no k on the telco charges: the page says why
        assert "<tr><td>gap</td><td>no answer (gap keeps rising up to k=10)</td></tr>" in html
    assert seen["firstCard"]["top"] < 400, seen["firstCard"]  # above the fold with room to read it
