"""A real headless Chromium (Debian's, through its chromedriver) for the sandbox page's tests, and `Browser`,
which finds things by what a person sees and waits for facts, never for time.

Screenshots of each step go to $TARS_SCREENSHOTS (or the test's tmp_path)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.support import debian_tool

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import (  # noqa: E402  (after the skip: selenium is a dev dependency)
    ElementClickInterceptedException,
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

STEP_TIMEOUT = 30.0
SUBMIT = "//form[contains(@class, 'modal')]//button[contains(@class, 'modal-submit')]"
T = TypeVar("T")


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    directory = Path(os.environ.get("TARS_SCREENSHOTS") or tmp_path / "screenshots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def browser(screenshots: Path, request: pytest.FixtureRequest) -> Iterator[Browser]:
    driver_path = debian_tool("chromedriver", "chromium-driver")
    options = Options()
    # Debian's binary, named so selenium never looks for (or downloads) another one.
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--window-size=1440,1000",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    browser = Browser(driver, screenshots / request.node.name)
    failed_before = request.session.testsfailed
    try:
        yield browser
        # The call's report is counted before teardown: a failed step leaves a picture of what the page showed.
        if request.session.testsfailed > failed_before:
            browser.shot("failure")
    finally:
        driver.quit()


# --- the page, as a person sees it ----------------------------------------------------------------------------------


class Browser:
    """Finds things by what a person sees (text, buttons, fields) and waits for facts, never for time.

    The page redraws a message whenever what it shows changes (a reply count, a name), so an element found a
    moment ago may be gone: everything is read inside a wait that looks again, and no element is kept.
    """

    def __init__(self, driver: WebDriver, screenshots: Path) -> None:
        self.driver = driver
        self.screenshots = screenshots
        self.shots = 0

    def open(self, url: str) -> None:
        self.driver.get(url)
        self.wait(
            lambda d: d.find_element(By.CSS_SELECTOR, "body[data-ready='true']"), "the page never loaded"
        )

    def wait(self, condition: Callable[[WebDriver], T], what: str, timeout: float = STEP_TIMEOUT) -> T:
        waiting = WebDriverWait(
            self.driver,
            timeout,
            poll_frequency=0.05,
            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
        )
        return waiting.until(condition, what)

    def shot(self, name: str) -> None:
        self.screenshots.mkdir(parents=True, exist_ok=True)
        self.shots += 1
        self.driver.save_screenshot(str(self.screenshots / f"{self.shots:02d}-{name}.png"))

    def click(self, xpath: str, what: str) -> None:
        def attempt(driver: WebDriver) -> bool:
            element = driver.find_element(By.XPATH, xpath)
            if not (element.is_displayed() and element.is_enabled()):
                return False
            try:
                element.click()
            except ElementClickInterceptedException:
                return False  # something (a closing dialog) covers it for a moment; the click did not happen
            return True

        self.wait(attempt, f"could not click {what}")

    def type(self, text: str, xpath: str = "//textarea[@id='composer']") -> None:
        def attempt(driver: WebDriver) -> bool:
            driver.find_element(By.XPATH, xpath).send_keys(text)
            return True

        self.wait(attempt, f"could not type into {xpath}")

    def command(self, text: str) -> None:
        self.type(text + Keys.ENTER)

    def text(self, xpath: str, what: str) -> str:
        return self.wait(lambda d: d.find_element(By.XPATH, xpath).text, what)

    def message_text(self, contains: str, *, where: str = "messages") -> str:
        """The (non-ephemeral) message saying `contains`, in the conversation or the thread pane."""
        return self.text(message_xpath(contains, where), f"no message saying {contains!r}")

    def ephemeral_text(self, contains: str) -> str:
        xpath = f"//div[@id='messages']/div[contains(@class, 'ephemeral')][contains(., {xpath_literal(contains)})]"
        return self.text(xpath, f"no private reply saying {contains!r}")

    def until_message(self, contains: str, check: Callable[[str], bool], what: str) -> str:
        xpath = message_xpath(contains)

        def checked(driver: WebDriver) -> str | None:
            text: str = driver.find_element(By.XPATH, xpath).text
            return text if check(text) else None

        found = self.wait(checked, what)
        assert found is not None  # the wait only returns a truthy value
        return found

    def attribute(self, xpath: str, name: str) -> str:
        return self.wait(
            lambda d: d.find_element(By.XPATH, xpath).get_attribute(name) or "", f"no {name} on {xpath}"
        )

    def present(self, xpath: str) -> bool:
        return bool(self.driver.find_elements(By.XPATH, xpath))

    def press(self, message_contains: str, button: str) -> None:
        self.click(
            message_xpath(message_contains) + f"//button[normalize-space() = {xpath_literal(button)}]",
            f"{button!r} on the message saying {message_contains!r}",
        )

    def act_as(self, user_id: str) -> None:
        Select(self.driver.find_element(By.ID, "persona")).select_by_value(user_id)
        self.wait(
            lambda d: d.find_element(By.CSS_SELECTOR, f"#messages[data-user='{user_id}']"),
            f"the page never showed {user_id}'s view",
        )

    def modal_text(self) -> str:
        return self.text("//div[@id='modal-root']//form[contains(@class, 'modal')]", "no form opened")

    def field(self, block_id: str, control: str = ".input-control") -> str:
        """The XPath-free way to a form field: a CSS selector, for `type` and `choose`."""
        return f"#modal-root [data-block-id='{block_id}'] {control}"

    def fill(self, block_id: str, text: str) -> None:
        selector = self.field(block_id)

        def attempt(driver: WebDriver) -> bool:
            driver.find_element(By.CSS_SELECTOR, selector).send_keys(text)
            return True

        self.wait(attempt, f"could not fill {block_id!r}")

    def choose(self, block_id: str, value: str) -> None:
        selector = self.field(block_id, "select")

        def attempt(driver: WebDriver) -> bool:
            Select(driver.find_element(By.CSS_SELECTOR, selector)).select_by_value(value)
            return True

        self.wait(attempt, f"could not choose {value!r} for {block_id!r}")

    def modal_closed(self) -> None:
        self.wait(
            lambda d: not d.find_elements(By.CSS_SELECTOR, "#modal-root form.modal"), "the form stayed open"
        )

    def injected(self) -> list[str]:
        """What HTML in a message would have become: script or img elements, or what a handler set."""
        found: list[WebElement] = self.driver.find_elements(
            By.CSS_SELECTOR, "#messages script, #messages img"
        )
        names = [f"<{element.tag_name}>" for element in found]
        if self.driver.execute_script("return window.__pwned !== undefined"):
            names.append("window.__pwned was set")
        return names


def message_xpath(contains: str, where: str = "messages") -> str:
    return (
        f"//div[@id='{where}']/div[contains(@class, 'message') and not(contains(@class, 'ephemeral'))]"
        f"[contains(., {xpath_literal(contains)})]"
    )


def xpath_literal(text: str) -> str:
    return f"'{text}'" if "'" not in text else f'"{text}"'
