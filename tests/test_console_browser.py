"""The web console in a real browser (issue 22): Debian's headless Chromium, driven by Selenium through Debian's
chromedriver (both from apt, ``make chromium-bin``; nothing is downloaded at test time), against a ``syncsvc serve``
process. An operator signs in, creates a pool, turns its stream on, browses an identity's records written through
boto3, watches a change arrive while the page is open, and deletes the dataset after the confirmation page; the
page is also checked at phone width. With ``SYNCSVC_SCREENSHOTS=<dir>`` the main pages are saved there as PNG
(``make screenshots`` writes docs/console/)."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import botocore
import pytest
from botocore.config import Config
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.conftest import DEVELOPER_KEY, DEVELOPER_SECRET, REGION, flushed_client
from tests.servers import Served, syncsvc_process

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT_SECONDS = 15
PHONE = (390, 844)
SCREENSHOTS = os.environ.get("SYNCSVC_SCREENSHOTS")


@pytest.fixture(scope="module")
def served(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`syncsvc serve` on a flushed database (what earlier modules left there was sealed under other keys)."""
    asyncio.run(_flush(redis_url))
    log = tmp_path_factory.mktemp("console") / "serve.log"
    with syncsvc_process(redis_url, log) as server:
        yield server


async def _flush(redis_url: str) -> None:
    async with flushed_client(redis_url):
        pass


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(WAIT_SECONDS)
    try:
        yield driver
    finally:
        driver.quit()


def until(browser: WebDriver, condition: Callable[[WebDriver], Any], what: str) -> Any:
    try:
        return WebDriverWait(browser, WAIT_SECONDS).until(condition)
    except TimeoutException:
        raise AssertionError(f"{what} (page: {browser.current_url})") from None


def shows(element_id: str) -> Callable[[WebDriver], Any]:
    """A wait condition: the page has an element of that id."""
    return lambda browser: browser.find_elements(By.ID, element_id)


def shot(browser: WebDriver, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(SCREENSHOTS) / f"{name}.png"))


def sign_in(browser: WebDriver, url: str) -> None:
    browser.get(url + "/console/pools")
    assert browser.current_url.endswith("/console/signin")  # a stranger is sent to sign in
    shot(browser, "signin")
    browser.find_element(By.NAME, "access_key_id").send_keys(DEVELOPER_KEY)
    browser.find_element(By.NAME, "secret").send_keys(DEVELOPER_SECRET)
    browser.find_element(By.CSS_SELECTOR, "#signin button").click()
    until(browser, lambda b: b.current_url.endswith("/console/pools"), "signed in, the pools page")


def developer(url: str, service: str) -> Any:
    """A boto3 client of ``service`` signed with the developer pair."""
    session: Any = boto3.session.Session(
        aws_access_key_id=DEVELOPER_KEY, aws_secret_access_key=DEVELOPER_SECRET, region_name=REGION
    )
    return session.client(service, endpoint_url=url, config=Config(retries={"max_attempts": 1}))


def device_sync(url: str, pool: str) -> tuple[str, Any]:
    """A new guest identity of ``pool`` and a cognito-sync client signed with its credentials."""
    unsigned = boto3.session.Session(region_name=REGION).client(
        "cognito-identity", endpoint_url=url, config=Config(signature_version=botocore.UNSIGNED)
    )
    identity = unsigned.get_id(IdentityPoolId=pool)["IdentityId"]
    credentials = unsigned.get_credentials_for_identity(IdentityId=identity)["Credentials"]
    session = boto3.session.Session(
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretKey"],
        aws_session_token=credentials["SessionToken"],
        region_name=REGION,
    )
    return identity, session.client("cognito-sync", endpoint_url=url, config=Config(retries={"max_attempts": 1}))


def write(client: Any, pool: str, identity: str, dataset: str, records: dict[str, str], sync_count: int) -> int:
    names = {"IdentityPoolId": pool, "IdentityId": identity, "DatasetName": dataset}
    token = client.list_records(**names)["SyncSessionToken"]
    patches = [{"Op": "replace", "Key": key, "Value": value, "SyncCount": sync_count} for key, value in records.items()]
    written = client.update_records(**names, SyncSessionToken=token, RecordPatches=patches)["Records"]
    return int(max(record["SyncCount"] for record in written))


def test_an_operator_creates_a_pool_turns_its_stream_on_browses_records_live_and_deletes_a_dataset(
    served: Served, browser: WebDriver
) -> None:
    url = served.url
    sign_in(browser, url)
    name = f"console{uuid.uuid4().hex[:8]}"
    browser.find_element(By.CSS_SELECTOR, "#new-pool input[name=name]").send_keys(name)
    browser.find_element(By.CSS_SELECTOR, "#new-pool input[name=guests]").click()
    browser.find_element(By.CSS_SELECTOR, "#new-pool button").click()
    until(browser, lambda b: "/console/pools/" in b.current_url and "Created." in b.page_source, "the new pool's page")
    pool = browser.current_url.split("/console/pools/")[1].split("?")[0]
    described = developer(url, "cognito-identity").describe_identity_pool(IdentityPoolId=pool)
    assert (described["IdentityPoolName"], described["AllowUnauthenticatedIdentities"]) == (name, True)

    topic = f"changes-{name}"
    browser.find_element(By.CSS_SELECTOR, "#streams input[name=topic]").send_keys(topic)
    browser.find_element(By.CSS_SELECTOR, "#streams input[name=enabled]").click()
    browser.find_element(By.CSS_SELECTOR, "#streams button").click()
    until(browser, lambda b: "Saved." in b.page_source, "the streams setting saved")
    shot(browser, "pool")
    streams = developer(url, "cognito-sync").get_identity_pool_configuration(IdentityPoolId=pool)["CognitoStreams"]
    assert (streams["StreamName"], streams["StreamingStatus"]) == (topic, "ENABLED")

    identity, device = device_sync(url, pool)
    sync_count = write(device, pool, identity, "settings", {"theme": "dark", "volume": "7"}, 0)
    browser.get(url + "/console/identities")
    Select(browser.find_element(By.CSS_SELECTOR, "#find-login select[name=pool]")).select_by_value(pool)
    browser.find_element(By.CSS_SELECTOR, "#find-login button").click()
    until(browser, lambda b: identity in b.page_source, "the pool's identities listed")
    shot(browser, "identities")
    browser.find_element(By.LINK_TEXT, identity).click()
    until(browser, lambda b: b.find_elements(By.LINK_TEXT, "settings"), "the identity's datasets")
    shot(browser, "identity")
    browser.find_element(By.LINK_TEXT, "settings").click()
    until(browser, lambda b: "dark" in b.find_element(By.ID, "records").text, "the dataset's records")
    assert browser.find_element(By.ID, "sync-count").text == str(sync_count)

    # a device writes while the page is open: the page shows it without a reload
    marker = browser.find_element(By.TAG_NAME, "h1")
    write(device, pool, identity, "settings", {"theme": "solarized"}, sync_count)
    until(browser, lambda b: "solarized" in b.find_element(By.ID, "records").text, "the new value, live")
    assert marker.is_displayed()  # the same page: it was not reloaded
    assert browser.find_element(By.ID, "sync-count").text == str(sync_count + 1)
    shot(browser, "dataset")
    browser.set_window_size(*PHONE)
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
    shot(browser, "dataset-phone")
    browser.set_window_size(1280, 900)

    browser.find_element(By.LINK_TEXT, "Delete dataset…").click()
    until(browser, lambda b: b.find_elements(By.ID, "confirm-delete"), "the confirmation page")
    assert device.describe_dataset(IdentityPoolId=pool, IdentityId=identity, DatasetName="settings")["Dataset"]
    browser.find_element(By.ID, "confirm-delete").click()
    until(browser, lambda b: "Deleted." in b.page_source, "the dataset deleted")
    datasets = device.list_datasets(IdentityPoolId=pool, IdentityId=identity)["Datasets"]
    assert "settings" not in {dataset["DatasetName"] for dataset in datasets}


def test_an_identity_cannot_sign_in_a_forged_form_is_refused_and_every_page_fits_a_phone(
    served: Served, browser: WebDriver
) -> None:
    url = served.url
    pool = developer(url, "cognito-identity").create_identity_pool(
        IdentityPoolName="guests", AllowUnauthenticatedIdentities=True
    )["IdentityPoolId"]
    unsigned = boto3.session.Session(region_name=REGION).client(
        "cognito-identity", endpoint_url=url, config=Config(signature_version=botocore.UNSIGNED)
    )
    identity = unsigned.get_id(IdentityPoolId=pool)["IdentityId"]
    credentials = unsigned.get_credentials_for_identity(IdentityId=identity)["Credentials"]
    browser.get(url + "/console/signin")
    browser.find_element(By.NAME, "access_key_id").send_keys(credentials["AccessKeyId"])
    browser.find_element(By.NAME, "secret").send_keys(credentials["SecretKey"])
    browser.find_element(By.CSS_SELECTOR, "#signin button").click()
    until(browser, lambda b: "not a developer credential pair" in b.page_source, "the refused sign-in")
    browser.get(url + "/console/pools")
    assert browser.current_url.endswith("/console/signin")

    sign_in(browser, url)
    shot(browser, "pools")
    # the form's CSRF token removed, as a forged form would come: refused, nothing created
    name = f"forged{uuid.uuid4().hex[:8]}"
    browser.execute_script("document.querySelector('#new-pool input[name=csrf]').remove()")
    browser.find_element(By.CSS_SELECTOR, "#new-pool input[name=name]").send_keys(name)
    browser.find_element(By.CSS_SELECTOR, "#new-pool button").click()
    until(browser, lambda b: "nothing was done" in b.page_source, "the refusal")
    listed = developer(url, "cognito-identity").list_identity_pools(MaxResults=60)["IdentityPools"]
    assert name not in {pool["IdentityPoolName"] for pool in listed}

    kms = developer(url, "kms")
    key = kms.create_key(Description="console")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=f"alias/{name}", TargetKeyId=key)
    browser.get(url + "/console/streams")
    until(browser, lambda b: "now:" in b.find_element(By.ID, "lag-now").text, "the lag chart's first reading")
    if SCREENSHOTS:  # a line, not a point
        script = (
            "return (document.querySelector('#lag-chart polyline')?.getAttribute('points') || '').split(' ').length"
        )
        until(browser, lambda b: b.execute_script(script) >= 4, "the lag chart's fourth reading")
    shot(browser, "streams")
    for page, marker in (("push", "instances"), ("triggers", "triggers"), ("keys", "keys")):
        browser.get(f"{url}/console/{page}")
        until(browser, shows(marker), f"the {page} page")
        shot(browser, page)
    assert f"alias/{name}" in browser.page_source
    browser.set_window_size(*PHONE)
    for page in ("pools", "streams", "push", "triggers", "keys"):
        browser.get(f"{url}/console/{page}")
        fits = browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")
        assert fits, f"/console/{page} is wider than a phone"
    browser.get(url + "/console/pools")
    shot(browser, "pools-phone")
