"""The web app in a real browser (Debian's chromium, headless, driven by Playwright):
submit a sleep job, upload an image and compress it, see both notifications from another
view, open the image job and see its preview. Screenshots of each view are kept."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from computeinfra import Client, Status
from tests.helpers import REPO, Stack, wait_for
from tests.integration.web_helpers import wait_for_web
from tests.unit.test_tasks import make_image

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 120_000
ARTIFACTS = REPO / "test-artifacts" / "web"
DOCS_SCREENSHOTS = REPO / "docs" / "screenshots"
UPDATE_ENV = "COMPUTEINFRA_UPDATE_SCREENSHOTS"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def shoot(page: Page, folder: Path, name: str) -> None:
    """Screenshot into the test's folder and test-artifacts/; into docs/ when asked to."""
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, ARTIFACTS / path.name)
    if os.environ.get(UPDATE_ENV) == "1":
        DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, DOCS_SCREENSHOTS / path.name)


def submit_form(page: Page, task: str) -> str:
    form = page.locator(f"form[data-task='{task}']")
    form.locator("button[type=submit]").click()
    link = form.locator(".message.ok a")
    expect(link).to_be_visible(timeout=TIMEOUT_MS)
    return link.inner_text()


def test_submit_upload_notify_and_preview(stack: Stack, browser: Browser, tmp_path: Path) -> None:
    wait_for_web(stack)
    image = make_image(tmp_path / "holiday.png", (640, 480))
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(stack.web_url)
    expect(page.locator("#live.on")).to_be_visible()

    page.locator(".tabs button[data-task='sleep']").click()
    sleep_form = page.locator("form[data-task='sleep']")
    sleep_form.locator("[name=seconds]").fill("0.3")
    sleep_form.locator("[name=result_dir]").fill("browser/sleep")
    sleep_key = submit_form(page, "sleep")

    page.locator(".tabs button[data-task='image-compression']").click()
    image_form = page.locator("form[data-task='image-compression']")
    image_form.locator("input[type=file][data-upload-for=images]").set_input_files(str(image))
    expect(image_form.locator("figure.upload")).to_have_count(1)
    assert "holiday.png" in image_form.locator("[name=images]").input_value()
    image_form.locator("[name=quality]").fill("40")
    image_form.locator("[name=result_dir]").fill("browser/images")
    shoot(page, tmp_path, "submit")
    image_key = submit_form(page, "image-compression")

    # Notifications arrive whichever view is open.
    page.goto(f"{stack.web_url}/#/metrics")
    for key in (sleep_key, image_key):
        expect(page.locator(f".toast[data-key='{key}']")).to_be_visible()
    expect(page.locator(f".toast[data-key='{image_key}']")).to_contain_text("succeeded")
    expect(page.locator("#blocks tbody tr")).to_have_count(2)
    # The view refreshes on a timer: wait until it counts both jobs, not a stale snapshot.
    page.wait_for_function(
        "() => Number(document.querySelector('#completed-last-minute .value')?.textContent) >= 2"
    )
    shoot(page, tmp_path, "metrics")

    page.goto(f"{stack.web_url}/#/jobs")
    for key in (sleep_key, image_key):
        expect(page.locator(f"tr.job[data-key='{key}']")).to_have_attribute(
            "data-state", "succeeded"
        )
    shoot(page, tmp_path, "jobs")

    page.locator(f".toast[data-key='{image_key}']").click()
    expect(page).to_have_url(f"{stack.web_url}/#/job/{image_key}")
    preview = page.locator(".output img.preview")
    expect(preview).to_be_visible()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=preview.element_handle()
    )
    expect(page.locator(".output .ratio")).to_contain_text("%")
    expect(page.locator("pre.event")).to_contain_text('"status": "succeeded"')
    shoot(page, tmp_path, "job")
    page.close()


def _submit_sleep(page: Page, seconds: str, result_dir: str) -> str:
    page.goto(page.url.split("#")[0])
    page.locator(".tabs button[data-task='sleep']").click()
    form = page.locator("form[data-task='sleep']")
    form.locator("[name=seconds]").fill(seconds)
    form.locator("[name=result_dir]").fill(result_dir)
    return submit_form(page, "sleep")


def test_a_job_is_cancelled_from_its_row_and_from_its_page(stack: Stack, browser: Browser) -> None:
    wait_for_web(stack)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(stack.web_url)
    expect(page.locator("#live.on")).to_be_visible()
    from_row = _submit_sleep(page, "300", "browser/cancel-row")
    from_page = _submit_sleep(page, "300", "browser/cancel-page")

    page.goto(f"{stack.web_url}/#/jobs")
    row = page.locator(f"tr.job[data-key='{from_row}']")
    expect(page.locator("#cancel-mine")).to_be_visible(timeout=TIMEOUT_MS)
    # The built-in sleep says its progress every second: a bar in its row, with a share.
    expect(row.locator(".progress[role=progressbar]")).to_be_visible(timeout=TIMEOUT_MS)
    expect(row.locator(".progress .label")).to_contain_text("%")
    row.locator("button.cancel").click()
    expect(page.locator("#cancel-message.ok")).to_contain_text("requested", timeout=TIMEOUT_MS)
    expect(row).to_have_attribute("data-state", "cancelled", timeout=TIMEOUT_MS)
    expect(row.locator("button.cancel")).to_have_count(0)  # nothing left to cancel
    expect(page.locator(f".toast[data-key='{from_row}']")).to_contain_text(
        "cancelled", timeout=TIMEOUT_MS
    )

    page.goto(f"{stack.web_url}/#/job/{from_page}")
    expect(page.locator("dl.facts .progress")).to_be_visible(timeout=TIMEOUT_MS)
    expect(page.locator("dl.facts")).to_contain_text("sleeping")
    page.locator("button.cancel").click()
    expect(page.locator("dl.facts .state")).to_have_text("cancelled", timeout=TIMEOUT_MS)
    expect(page.locator(".error-box.cancelled")).to_contain_text(
        "cancelled on request", timeout=TIMEOUT_MS
    )
    expect(page.locator("button.cancel")).to_have_count(0)
    page.close()


def test_a_dead_letter_is_replayed_from_its_page(
    stack: Stack, browser: Browser, client: Client
) -> None:
    wait_for_web(stack)
    failed = client.submit("explode", {"message": "for the page"}, "browser/dead")
    assert failed.completion(TIMEOUT_MS / 1000).status is Status.FAILED
    url = f"{stack.web_url}/api/dead-letters"

    def listed() -> bool:
        letters = httpx.get(url, params={"task": "explode"}, timeout=60).json()["dead_letters"]
        return any(letter["key"] == failed.key for letter in letters)

    wait_for(listed, TIMEOUT_MS / 1000, "the dead letter on deadJobs")
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(f"{stack.web_url}/#/dead")
    row = page.locator(f"tr.dead[data-key='{failed.key}']")
    expect(row).to_contain_text("ValueError: for the page", timeout=TIMEOUT_MS)
    row.locator("button.replay").click()
    expect(page.locator("#replay-message.ok")).to_contain_text(
        f"{failed.key}.r1", timeout=TIMEOUT_MS
    )
    expect(page.locator(f"tr.dead[data-key='{failed.key}']")).to_contain_text(
        f"{failed.key}.r1", timeout=TIMEOUT_MS
    )
    page.close()
