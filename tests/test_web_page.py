"""The web page at ``/`` in a real headless browser: Debian's chromium driven by Selenium, against the real Serve
app on loopback (tests/test_serve_video.py's main app). An image goes through the file input, a video
through the video input, a frame through the (fake) webcam; the page must show what the API answers.

The browser is a requirement, not an option: without chromium and chromedriver these tests fail (.ci/run installs
them with apt), they do not skip.
"""

from __future__ import annotations

import json

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from fas.data.faces import encode_image
from tests import test_serve_video
from tests.conftest import chromium_driver
from tests.test_serve_video import VIDEO_MODELS, post_video, serve_video_apps

videos = test_serve_video.videos  # the PyAV-written test videos (a module fixture)

BOX_RGBA = [255, 0, 255, 255]  # the page's face-box colour
WAIT_S = 90


@pytest.fixture(scope="module")
def page_served(ray_local, tmp_path_factory):
    """The video tests' main app with one of its models and without their /strict app: the page needs no more."""
    yield from serve_video_apps(tmp_path_factory.mktemp("page_models"), strict=False, models=VIDEO_MODELS[1:])


@pytest.fixture(scope="module")
def browser():
    yield from chromium_driver("--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream")  # a test webcam


def open_page(driver, url: str):
    driver.get(f"{url}/")
    WebDriverWait(driver, WAIT_S).until(lambda d: d.title == "fas liveness", message=driver.page_source[:500])
    return driver


def wait_answer(driver, kind: str) -> dict:
    """The answer the page received (its raw-JSON panel) once it shows a ``kind`` (image or video) result."""
    WebDriverWait(driver, WAIT_S).until(
        lambda d: d.find_element(By.ID, "result").get_attribute("data-kind") == kind
        or d.find_element(By.ID, "error").is_displayed())
    assert not driver.find_element(By.ID, "error").is_displayed(), driver.find_element(By.ID, "error").text
    return json.loads(driver.find_element(By.ID, "raw").get_attribute("textContent"))


def shown_decision(driver) -> str:
    return driver.find_element(By.ID, "decision").get_attribute("data-decision")


def expected_decision(answer: dict) -> str:
    return answer.get("decision") or ("live" if answer["live"] else "spoof")


def canvas_pixel(driver, x: int, y: int) -> list[int]:
    return driver.execute_script(
        "return Array.from(document.getElementById('view').getContext('2d').getImageData(arguments[0], arguments[1], "
        "1, 1).data);", x, y)


def test_page_is_self_contained(page_served):
    response = requests.get(f"{page_served}/", timeout=30)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "<script src" not in response.text and "https://" not in response.text  # no CDN: works offline


def test_image_upload_shows_decision_box_and_explanation(browser, page_served, tmp_path, astronaut_rgb):
    path = tmp_path / "astronaut.jpg"
    path.write_bytes(encode_image(astronaut_rgb, "jpg"))
    api = requests.post(f"{page_served}/v1/liveness", files={"image": (path.name, path.read_bytes())}, timeout=60)
    expected = api.json()
    open_page(browser, page_served).find_element(By.ID, "image-file").send_keys(str(path))
    shown = wait_answer(browser, "image")
    assert shown["score"] == pytest.approx(expected["score"], abs=1e-5) and shown["face"] == expected["face"]
    assert shown_decision(browser) == expected_decision(expected)
    assert browser.find_element(By.ID, "decision").text.lower() == expected_decision(expected)
    assert browser.find_element(By.ID, "score").text == f"{shown['score']:.3f}"
    # the picture is drawn at its own size with the face box over it, where the service found the face
    size = browser.execute_script("const c = document.getElementById('view'); return [c.width, c.height];")
    assert size == [512, 512]
    x0, y0, x1, y1 = expected["face"]["box"]
    middle = (y0 + y1) // 2
    assert canvas_pixel(browser, x0, middle) == BOX_RGBA and canvas_pixel(browser, x1, middle) == BOX_RGBA
    assert canvas_pixel(browser, (x0 + x1) // 2, (y0 + y1) // 2) != BOX_RGBA
    # explanation: each CLIPC8 model's eight class probabilities, most likely first
    rows = browser.find_elements(By.CSS_SELECTOR, "#models tbody tr")
    assert [r.find_element(By.TAG_NAME, "td").text for r in rows] == list(expected["models"])
    for row in rows:
        name = row.find_element(By.TAG_NAME, "td").text
        probs = expected["models"][name]["probs"]
        lines = row.find_elements(By.CSS_SELECTOR, "td:last-child > div")
        assert [line.text.split(" ")[0] for line in lines] == sorted(probs, key=probs.get, reverse=True)
    codes = [li.get_attribute("data-code") for li in browser.find_elements(By.CSS_SELECTOR, "#warnings li")]
    assert codes == [w["code"] for w in expected.get("warnings") or []]


def test_video_upload_shows_the_frames(browser, page_served, videos):
    expected = post_video(page_served, videos["mp4"].read_bytes()).json()
    open_page(browser, page_served).find_element(By.ID, "video-file").send_keys(str(videos["mp4"]))
    shown = wait_answer(browser, "video")
    assert shown["score"] == pytest.approx(expected["score"], abs=1e-5)
    assert shown_decision(browser) == expected_decision(expected)
    rows = browser.find_elements(By.CSS_SELECTOR, "#frames tbody tr")
    assert [int(r.get_attribute("data-index")) for r in rows] == [f["index"] for f in expected["frames"]]
    assert [r.find_elements(By.TAG_NAME, "td")[2].text for r in rows] == [f"{f['score']:.3f}" for f in shown["frames"]]


def test_webcam_frame_is_captured_and_answered(browser, page_served):
    open_page(browser, page_served).find_element(By.ID, "camera-start").click()
    WebDriverWait(browser, WAIT_S).until(
        lambda d: d.execute_script("return document.getElementById('camera').videoWidth") > 0)
    width, height = browser.execute_script("const v = document.getElementById('camera'); "
                                           "return [v.videoWidth, v.videoHeight];")
    browser.find_element(By.ID, "camera-capture").click()
    shown = wait_answer(browser, "image")
    assert shown["image"] == {"format": "JPEG", "width": width, "height": height}  # the captured frame, as sent
    assert shown_decision(browser) == expected_decision(shown)
    browser.find_element(By.ID, "camera-stop").click()


def test_refusal_shows_the_reason(browser, page_served, tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not an image\n" * 20)
    open_page(browser, page_served).find_element(By.ID, "image-file").send_keys(str(path))
    WebDriverWait(browser, WAIT_S).until(lambda d: d.find_element(By.ID, "error").is_displayed())
    assert browser.find_element(By.ID, "error").text.startswith("400 not_an_image: ")
