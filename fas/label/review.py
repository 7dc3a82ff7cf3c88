"""The review web page of ``fas label review``: one queue folder (``fas/label/queue.py``) in a browser.

The page shows the most uncertain suggestion first and records one decision per key press. Everything it knows
comes from the queue folder at each request (the queue file, the decision files), so a closed browser, a CSV
import or a second tab never disagrees with what is on disk: reopening the page resumes where the disk says.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel

from fas.integrity import StorageError
from fas.label import queue as q

PAGE = Path(__file__).parent / "web" / "review.html"  # package data (pyproject: label/web/*.html)
ITEM_FIELDS = ("id", "source", "frame", "image", "category", "category_name", "probs", "margin", "entropy", "box",
               "warnings", "duplicate")  # what the page shows; sha256/phash stay on disk


class DecisionIn(BaseModel):
    """``category`` is required but may be null: a skip is an explicit choice, not a missing field."""

    id: str
    category: str | None


def queue_state(folder: Path) -> dict:
    """The queue as the page needs it: items in queue order, each with its decision (letter, None: skipped)."""
    queue, decisions = q.load_queue(folder), q.read_decisions(folder)
    items = []
    for item in queue["items"]:
        decided = decisions.get(item["id"])
        shown = {key: item.get(key) for key in ITEM_FIELDS}
        items.append(shown | {"decided": decided is not None, "decision": (decided or {}).get("category")})
    return {"categories": queue["categories"], "items": items, "decided": sum(i["decided"] for i in items),
            "total": len(items)}


def find_item(folder: Path, item_id: str) -> dict:
    """The queue's item ``item_id``, or a 404 whose reason the page shows."""
    for item in q.load_queue(folder)["items"]:
        if item["id"] == item_id:
            return item
    raise HTTPException(404, f"item {item_id!r} is not in the queue {folder}")


def image_path(folder: Path, item: dict) -> Path:
    """The one file the queue names for ``item``. A saved frame must stay inside the queue folder (a hand-edited
    ``../`` in queue.json must not turn the page into a file server); a source is the path the queue recorded."""
    path = q.item_image(folder, item)
    if item.get("frame") is not None and not path.resolve().is_relative_to(folder.resolve()):
        raise HTTPException(404, f"item {item['id']!r}: its frame {item['image']!r} is outside the queue folder")
    if not path.is_file():
        raise HTTPException(404, f"item {item['id']!r}: its image {path} is missing")
    return path


def make_app(folder: str | Path) -> FastAPI:
    """The review app for one queue folder; a folder without a queue fails here, before a server starts."""
    folder = Path(folder)
    q.load_queue(folder)
    app = FastAPI(title="fas label review", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(q.QueueError)
    @app.exception_handler(StorageError)
    async def reason(request: Request, exc: Exception) -> JSONResponse:
        """A queue that cannot be read (a hand-edited decision) or a disk that cannot be written: the page shows
        the message, which says what to do."""
        return JSONResponse({"detail": str(exc)}, status_code=400 if isinstance(exc, q.QueueError) else 500)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @app.get("/api/queue")
    def get_queue() -> dict:
        return queue_state(folder)

    @app.get("/api/image/{item_id}")
    def get_image(item_id: str) -> FileResponse:
        path = image_path(folder, find_item(folder, item_id))
        media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=media, headers={"X-Content-Type-Options": "nosniff",
                                                             "Cache-Control": "no-store"})

    @app.post("/api/decision")
    def post_decision(decision: DecisionIn) -> dict:
        find_item(folder, decision.id)  # unknown id: 404; a bad letter: write_decision's QueueError, 400
        return q.write_decision(folder, decision.id, decision.category, by="page")

    @app.delete("/api/decision/{item_id}")
    def delete_decision(item_id: str) -> dict:
        find_item(folder, item_id)
        return {"removed": q.remove_decision(folder, item_id)}

    return app


def serve_review(folder: str | Path, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve the page until Ctrl-C. Loopback by default: the routes write decisions and read the queue's images,
    with no login, so another address is the caller's explicit choice."""
    import uvicorn

    app = make_app(folder)
    print(f"fas label review: http://{host}:{port}/ (Ctrl-C to stop; decisions go to {Path(folder) / q.DECISIONS})",
          flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
