"""``fas label review``'s web page (fas/label/review.py, fas/label/web/review.html) over a queue folder made by hand:
its API through FastAPI's test client, the page itself in a real headless browser (Debian's chromium driven by
Selenium, as tests/test_web_page.py: without chromium and chromedriver these tests fail, they do not skip), and the
CSV round trip of fas/label/queue.py. Every check reads the decision files on disk.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time

import pytest
import uvicorn
from fastapi.testclient import TestClient
from PIL import Image
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from fas.label import queue as q
from fas.label.review import make_app
from tests.conftest import chromium_driver

CATEGORIES = dict(zip("abcdefgh", ("real", "id_card", "face_mask", "online_verification", "personal_id",
                                   "recaptured", "photoshopped", "dark_environment")))
WAIT_S = 20
NO_FACE = {"code": "no_face", "detail": "no face was found; the whole frame was scored"}  # as fas.quality words it
# id, suggested letter, runner-up, image name, size, colour, frame, box, duplicate
ITEMS = [
    ("000001", "c", "a", "one.png", (1200, 600), (200, 30, 30), None, [300, 150, 900, 450], None),
    ("000002", "a", "b", "two.jpg", (320, 240), (30, 200, 30), None, None, {"kind": "near", "distance": 3}),
    ("000003", "f", "g", "frames/000003.png", (160, 120), (30, 30, 200), 12, [10, 20, 90, 100], None),
    ("000004", "b", "a", "four.png", (100, 100), (200, 200, 30), None, None, {"kind": "exact", "distance": 0}),
    ("000005", "h", "a", "five.png", (90, 60), (30, 200, 200), None, [0, 0, 45, 30], None),
    ("000006", "e", "d", "six.png", (60, 90), (200, 30, 200), None, None, None),
]


def probs(top: str, second: str) -> dict[str, float]:
    return {letter: 0.5 if letter == top else 0.2 if letter == second else 0.05 for letter in CATEGORIES}


def make_queue(folder, items=ITEMS) -> dict:
    """A queue folder as ``fas label suggest`` writes one: images on disk (a frame under frames/), queue.json."""
    rows = []
    for item_id, top, second, name, size, colour, frame, box, duplicate in items:
        path = folder / name if frame is not None else folder / "sources" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, colour).save(path)
        p = probs(top, second)
        rows.append({"id": item_id, "source": str(folder / "sources" / "clip.mp4") if frame is not None else str(path),
                     "frame": frame, "image": name if frame is not None else str(path), "category": top,
                     "category_name": CATEGORIES[top], "probs": p, "margin": 0.3,
                     "entropy": -sum(v * math.log(v) for v in p.values()), "box": box, "sha256": f"{item_id}sha",
                     "num_faces": 1 if box else 0, "warnings": [] if box else [NO_FACE],
                     "phash": f"{item_id}ph", "duplicate": duplicate and duplicate | {"of": str(folder / "older.png")}})
    queue = {"model": "toy-clipc8", "categories": CATEGORIES, "created": "2025-01-01T00:00:00", "items": rows}
    q.write_queue(folder, queue)
    return queue


@pytest.fixture
def folder(tmp_path):
    make_queue(tmp_path / "queue")
    return tmp_path / "queue"


@pytest.fixture
def client(folder):
    return TestClient(make_app(folder))


def decision_on_disk(folder, item_id: str) -> tuple | None:
    """(category, by) of an item's decision file, None where it has none."""
    path = folder / q.DECISIONS / f"{item_id}.json"
    if not path.is_file():
        return None
    decision = json.loads(path.read_text())
    assert decision["id"] == item_id
    return decision["category"], decision["by"]


def decision_files(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((folder / q.DECISIONS).glob("*"))}


# ---- the API ----

def test_make_app_needs_a_queue(tmp_path):
    with pytest.raises(q.QueueError, match="no queue.json; make a queue with `fas label suggest"):
        make_app(tmp_path)


def test_page_is_self_contained(client):
    response = client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "<title>fas label review</title>" in response.text
    assert "<script src" not in response.text and "http://" not in response.text and "https://" not in response.text


def test_queue_lists_items_in_order_with_their_decisions(client, folder):
    answer = client.get("/api/queue").json()
    assert answer["categories"] == CATEGORIES and (answer["decided"], answer["total"]) == (0, 6)
    assert [i["id"] for i in answer["items"]] == [row[0] for row in ITEMS]
    first = answer["items"][0]
    on_disk = q.load_queue(folder)["items"][0]
    assert first == {key: on_disk[key] for key in ("id", "source", "frame", "image", "category", "category_name",
                                                    "probs", "margin", "entropy", "box", "warnings", "duplicate")} | {
        "decided": False, "decision": None}
    q.write_decision(folder, "000002", "g", by="csv")
    q.write_decision(folder, "000004", None, by="csv")  # skipped: decided, no category
    answer = client.get("/api/queue").json()
    assert [(i["decided"], i["decision"]) for i in answer["items"]] == [
        (False, None), (True, "g"), (False, None), (True, None), (False, None), (False, None)]
    assert (answer["decided"], answer["total"]) == (2, 6)


def test_images_are_the_queue_files(client, folder):
    for item_id, name, media in (("000001", "sources/one.png", "image/png"), ("000002", "sources/two.jpg",
                                 "image/jpeg"), ("000003", "frames/000003.png", "image/png")):
        response = client.get(f"/api/image/{item_id}")
        assert response.status_code == 200 and response.headers["content-type"] == media
        assert response.content == (folder / name).read_bytes()
    response = client.get("/api/image/000099")
    assert response.status_code == 404
    assert response.json() == {"detail": f"item '000099' is not in the queue {folder}"}
    (folder / "sources" / "five.png").unlink()
    assert client.get("/api/image/000005").json() == {
        "detail": f"item '000005': its image {folder / 'sources' / 'five.png'} is missing"}


def test_a_frame_outside_the_queue_folder_is_not_served(tmp_path):
    folder = tmp_path / "queue"
    make_queue(folder, ITEMS[2:3])
    queue = q.load_queue(folder)
    (tmp_path / "secret.png").write_bytes(b"not for the page")
    queue["items"][0]["image"] = "../secret.png"
    q.write_queue(folder, queue)
    response = TestClient(make_app(folder)).get("/api/image/000003")
    assert response.status_code == 404
    assert response.json() == {"detail": "item '000003': its frame '../secret.png' is outside the queue folder"}


def test_decisions_are_written_replaced_and_undone(client, folder):
    response = client.post("/api/decision", json={"id": "000003", "category": "d"})
    assert response.status_code == 200
    assert {k: response.json()[k] for k in ("id", "category", "by")} == {"id": "000003", "category": "d", "by": "page"}
    assert decision_on_disk(folder, "000003") == ("d", "page")
    assert client.post("/api/decision", json={"id": "000003", "category": None}).status_code == 200  # skip
    assert decision_on_disk(folder, "000003") == (None, "page")
    assert sorted(decision_files(folder)) == ["000003.json"]  # replaced, no temporary left behind
    assert client.delete("/api/decision/000003").json() == {"removed": True}
    assert decision_on_disk(folder, "000003") is None
    assert client.delete("/api/decision/000003").json() == {"removed": False}


def test_bad_decisions_say_why_and_change_nothing(client, folder):
    q.write_decision(folder, "000001", "a", by="csv")
    before = decision_files(folder)
    for category in ("x", "A", ""):
        response = client.post("/api/decision", json={"id": "000001", "category": category})
        assert response.status_code == 400
        assert response.json() == {"detail": f"category {category!r}: expected one of a, b, c, d, e, f, g, h (or skip)"}
    response = client.post("/api/decision", json={"id": "000099", "category": "a"})
    assert response.status_code == 404 and response.json() == {"detail": f"item '000099' is not in the queue {folder}"}
    response = client.delete("/api/decision/000099")
    assert response.status_code == 404 and response.json() == {"detail": f"item '000099' is not in the queue {folder}"}
    assert client.post("/api/decision", json={"id": "000001"}).status_code == 422  # a skip is null, not missing
    assert decision_files(folder) == before


def test_a_hand_broken_decision_file_is_named(client, folder):
    (folder / q.DECISIONS).mkdir()
    (folder / q.DECISIONS / "000002.json").write_text("{half")
    response = client.get("/api/queue")
    assert response.status_code == 400
    assert response.json()["detail"].startswith(f"{folder / q.DECISIONS / '000002.json'}: not a decision (")
    assert response.json()["detail"].endswith("delete it to decide that item again")


# ---- the CSV round trip ----

def with_decision(line: str, value: str) -> str:
    """A CSV row with its last cell (decision) replaced, the rest as exported."""
    return line.rsplit(",", 1)[0] + "," + value


def test_csv_round_trip(folder, tmp_path):
    q.write_decision(folder, "000001", "b", by="page")
    q.write_decision(folder, "000003", None, by="page")
    sheet = tmp_path / "queue.csv"
    assert q.export_csv(folder, sheet) == 6
    lines = sheet.read_text().splitlines()
    assert lines[0] == ",".join(q.CSV_COLUMNS)
    rows = [line.split(",") for line in lines[1:]]
    assert [(r[0], r[4], r[5], r[7], r[8]) for r in rows] == [
        ("000001", "c", "0.5000", "", "b"), ("000002", "a", "0.5000", "near", ""),
        ("000003", "f", "0.5000", "", "skip"), ("000004", "b", "0.5000", "exact", ""),
        ("000005", "h", "0.5000", "", ""), ("000006", "e", "0.5000", "", "")]
    assert rows[2][1:4] == [str(folder / "frames" / "000003.png"), str(folder / "sources" / "clip.mp4"), "12"]

    # a bad letter anywhere: nothing is written, not even the good rows before it
    before = decision_files(folder)
    bad = lines[:2] + [with_decision(lines[2], "g"), with_decision(lines[3], "x")] + lines[4:]
    sheet.write_text("\n".join(bad) + "\n")
    with pytest.raises(q.QueueError, match=r"queue.csv:4: decision 'x': expected a letter a..h or skip"):
        q.import_csv(folder, sheet)
    assert decision_files(folder) == before

    # edited: 000002 -> g (upper case in the sheet), 000003 skip -> d, 000006 -> skip; the rest as exported
    edited = lines[:2] + [with_decision(lines[2], "G"), with_decision(lines[3], "d")] + lines[4:6] + [
        with_decision(lines[6], "skip")]
    sheet.write_text("\n".join(edited) + "\n")
    assert q.import_csv(folder, sheet) == {"rows": 6, "decided": 3}  # 000001 kept as the page made it
    assert {row[0]: decision_on_disk(folder, row[0]) for row in ITEMS} == {
        "000001": ("b", "page"), "000002": ("g", "csv"), "000003": ("d", "csv"), "000004": None, "000005": None,
        "000006": (None, "csv")}
    q.export_csv(folder, sheet)
    assert [line.rsplit(",", 1)[1] for line in sheet.read_text().splitlines()[1:]] == ["b", "g", "d", "", "", "skip"]


# ---- the page in a real browser ----

@pytest.fixture(scope="module")
def browser():
    yield from chromium_driver("--window-size=1280,1000")  # the 1200-pixel image is shown smaller than it is


@contextlib.contextmanager
def served(app):
    """The app on 127.0.0.1 at a port the OS picks (no race for a "free" one), in a thread; its URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the review app did not start"
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(WAIT_S)


def text(driver, element_id: str) -> str:
    return driver.find_element(By.ID, element_id).text


def press(driver, *keys: str) -> None:
    ActionChains(driver).send_keys(*keys).perform()


def settled(driver) -> bool:
    """No action running or waiting in the page."""
    return driver.execute_script("return !document.body.dataset.busy")


def wait_item(driver, item_id: str, progress: str) -> None:
    """The page shows ``item_id`` with ``progress``, nothing left to do, and no error."""
    WebDriverWait(driver, WAIT_S).until(
        lambda d: settled(d) and text(d, "item-id") == item_id and text(d, "progress") == progress
        or d.find_element(By.ID, "error").is_displayed(), message=f"waiting for {item_id}, {progress}")
    assert not driver.find_element(By.ID, "error").is_displayed(), text(driver, "error")
    assert text(driver, "item-id") == item_id and text(driver, "progress") == progress


def wait_on_disk(folder, item_id: str, expected) -> None:
    deadline = time.monotonic() + WAIT_S
    while decision_on_disk(folder, item_id) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert decision_on_disk(folder, item_id) == expected


def image_and_box(driver) -> dict:
    return driver.execute_script("""
        const img = document.getElementById('image'), box = document.getElementById('box');
        const r = img.getBoundingClientRect(), b = box.getBoundingClientRect();
        return {complete: img.complete, natural: [img.naturalWidth, img.naturalHeight], shown: !box.hidden,
                img: [r.left, r.top, r.width, r.height], box: [b.left, b.top, b.right, b.bottom]};""")


def assert_box_drawn(driver, size, box) -> None:
    """The face box over the image where ``box`` (image pixels) lies, whatever size the image is shown at."""
    WebDriverWait(driver, WAIT_S).until(lambda d: image_and_box(d)["complete"] and image_and_box(d)["shown"])
    shown = image_and_box(driver)
    assert shown["natural"] == list(size)
    left, top, width, height = shown["img"]
    scale = width / size[0]
    assert height == pytest.approx(size[1] * scale, abs=1)
    expected = [left + box[0] * scale, top + box[1] * scale, left + box[2] * scale, top + box[3] * scale]
    assert shown["box"] == pytest.approx(expected, abs=1.5)


def test_review_in_the_browser(browser, folder):
    with served(make_app(folder)) as url:
        browser.get(f"{url}/")
        WebDriverWait(browser, WAIT_S).until(lambda d: d.title == "fas label review")
        wait_item(browser, "000001", "0 of 6 decided")
        # the first item: suggestion, the 8 probabilities, uncertainty, the face box (a 1200x600 image shown smaller)
        assert text(browser, "suggestion") == "c face_mask"
        rows = browser.find_elements(By.CSS_SELECTOR, "#probs .prob")
        assert [[r.find_element(By.CLASS_NAME, c).text for c in ("letter", "name", "pct")] for r in rows] == [
            [letter, name, {"c": "50.0%", "a": "20.0%"}.get(letter, "5.0%")] for letter, name in CATEGORIES.items()]
        assert browser.find_element(By.CSS_SELECTOR, "#probs .prob.suggested").get_attribute("data-letter") == "c"
        entropy = -(0.5 * math.log(0.5) + 0.2 * math.log(0.2) + 6 * 0.05 * math.log(0.05))
        assert (text(browser, "margin"), text(browser, "entropy"), text(browser, "max-entropy")) == (
            "0.300", f"{entropy:.3f}", f"{math.log(8):.3f}")
        assert not browser.find_element(By.ID, "duplicate").is_displayed()
        assert not browser.find_element(By.ID, "warnings").is_displayed()
        assert_box_drawn(browser, (1200, 600), [300, 150, 900, 450])
        assert image_and_box(browser)["img"][2] < 1200  # scaled down to fit: the box followed
        assert len(browser.find_elements(By.CSS_SELECTOR, "#legend li")) == 11

        press(browser, "b")  # decide b
        wait_item(browser, "000002", "1 of 6 decided")
        assert decision_on_disk(folder, "000001") == ("b", "page")
        assert text(browser, "duplicate") == (f"Possible duplicate: near duplicate of {folder / 'older.png'} "
                                              f"(distance 3)")
        assert not browser.find_element(By.ID, "box").is_displayed()  # this item has no box
        assert [(li.get_attribute("data-code"), li.text) for li in browser.find_elements(
            By.CSS_SELECTOR, "#warnings li")] == [("no_face", NO_FACE["detail"])]  # and the reviewer is told why

        press(browser, Keys.ENTER)  # accept the suggestion, a
        wait_item(browser, "000003", "2 of 6 decided")
        assert decision_on_disk(folder, "000002") == ("a", "page")
        assert_box_drawn(browser, (160, 120), [10, 20, 90, 100])  # the saved video frame, at its own size
        assert text(browser, "source") == f"{folder / 'sources' / 'clip.mp4'} · frame 12"

        press(browser, "s")  # skip
        wait_item(browser, "000004", "3 of 6 decided")
        assert decision_on_disk(folder, "000003") == (None, "page") and text(browser, "skipped") == "(1 skipped)"

        press(browser, Keys.BACK_SPACE)  # undo the skip: 000003 again, its file gone
        wait_item(browser, "000003", "2 of 6 decided")
        assert decision_on_disk(folder, "000003") is None and text(browser, "skipped") == ""

        browser.find_element(By.ID, "btn-d").click()  # the mouse does the same
        wait_item(browser, "000004", "3 of 6 decided")
        assert decision_on_disk(folder, "000003") == ("d", "page")

        # someone decides 000005 elsewhere (a CSV import); the browser is closed and opened again
        q.write_decision(folder, "000005", "g", by="csv")
        browser.get(f"{url}/")
        wait_item(browser, "000004", "4 of 6 decided")  # resumes at the first undecided item
        press(browser, "z")  # nothing decided on this page yet: nothing undone
        WebDriverWait(browser, WAIT_S).until(lambda d: text(d, "status").startswith("nothing to undo"))
        wait_item(browser, "000004", "4 of 6 decided")
        assert decision_on_disk(folder, "000003") == ("d", "page")

        # the API refuses (the queue was rewritten without this item): the page says why and stays
        queue = q.load_queue(folder)
        q.write_queue(folder, queue | {"items": [i for i in queue["items"] if i["id"] != "000004"]})
        press(browser, "a")
        WebDriverWait(browser, WAIT_S).until(lambda d: d.find_element(By.ID, "error").is_displayed())
        assert text(browser, "error") == f"POST api/decision: HTTP 404: item '000004' is not in the queue {folder}"
        assert text(browser, "item-id") == "000004" and decision_on_disk(folder, "000004") is None
        q.write_queue(folder, queue)
        six = folder / "sources" / "six.png"
        six.rename(six.with_suffix(".away"))  # and the next item's image is missing: the page says which file
        press(browser, "a")  # now it goes through, and on past 000005 (decided elsewhere)
        WebDriverWait(browser, WAIT_S).until(lambda d: d.find_element(By.ID, "error").is_displayed())
        assert text(browser, "error") == f"GET api/image/000006: HTTP 404: item '000006': its image {six} is missing"
        assert (text(browser, "item-id"), text(browser, "progress")) == ("000006", "5 of 6 decided")
        assert decision_on_disk(folder, "000004") == ("a", "page")
        six.with_suffix(".away").rename(six)

        # three keys at once run in order, one request at a time: h decides, z undoes it, e decides again
        press(browser, "h", "z", "e")
        wait_on_disk(folder, "000006", ("e", "page"))
        WebDriverWait(browser, WAIT_S).until(lambda d: settled(d) and d.find_element(By.ID, "done").is_displayed())
        assert text(browser, "done") == "All 6 items decided" and text(browser, "progress") == "6 of 6 decided"
        assert not browser.find_element(By.ID, "item").is_displayed()
        assert not browser.find_element(By.ID, "error").is_displayed()
        assert {row[0]: decision_on_disk(folder, row[0]) for row in ITEMS} == {
            "000001": ("b", "page"), "000002": ("a", "page"), "000003": ("d", "page"), "000004": ("a", "page"),
            "000005": ("g", "csv"), "000006": ("e", "page")}

        browser.get(f"{url}/")  # reopened when all is done: done, nothing to show
        WebDriverWait(browser, WAIT_S).until(lambda d: d.find_element(By.ID, "done").is_displayed())
        assert text(browser, "done") == "All 6 items decided"
