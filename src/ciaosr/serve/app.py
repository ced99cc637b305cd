"""The HTTP side of ``ciaosr serve`` (Starlette): the page and a small JSON API.

``GET /``                          the page (``static/``, shipped with the package)
``GET /api/config``                models, limits, precisions and formats, for the page
``GET /api/size``                  ``?width=&height=&scale=`` (or ``size=``): the output size, or the error
``POST /api/jobs``                 ``?name=&model=&scale=|size=&precision=&tile=&format=``, the image as the body
``GET /api/jobs/ID``               state, queue position, progress (tiles done of total), result
``DELETE /api/jobs/ID``            cancel (or delete a finished job's files)
``GET /api/jobs/ID/input``         the upright input as PNG, for the comparison
``GET /api/jobs/ID/preview``       the result as the browser can show it
``GET /api/jobs/ID/result``        the download; the job's files are deleted once it is sent

Every error is JSON, ``{"error": "<one line>"}``, with a 4xx status: 400 for what the
command line would refuse (its message), 404 for an unknown or deleted job, 413 for an
upload over the limit, 503 when the queue is full. Requests that change something
(POST, DELETE) must carry the header ``X-Ciaosr: 1``, which a page of another site
cannot send without the server's consent (a CORS preflight, never granted); served on a
loopback address, requests must name it as their host (no DNS rebinding).

Request paths never reach the file system: the page's files are a fixed table loaded
from the package, jobs are found by their random id in memory, models by their id in
the catalogue, and job files have the server's names.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

import torch
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from .. import __version__
from ..errors import CiaosrError
from ..geometry import Resize
from ..runtime import PRECISIONS
from .catalogue import Catalogue
from .hosts import LOOPBACK_NAMES, is_loopback
from .jobs import JobQueue, QueueFull, prepare
from .limits import Limits
from .settings import FORMATS, RAISE_LIMIT, Settings, input_extension, upload_name

log = logging.getLogger("ciaosr.serve")

#: The page's files: URL path -> (file in ciaosr/serve/static, content type).
PAGE_FILES = {"/": ("index.html", "text/html; charset=utf-8"),
              "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
              "/static/style.css": ("style.css", "text/css; charset=utf-8")}
#: The header that POST and DELETE need (see the module's notes).
WRITE_HEADER = "x-ciaosr"
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                               "script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
MEDIA_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "TIFF": "image/tiff",
               "BMP": "image/bmp"}


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=SECURITY_HEADERS)


def create_app(*, limits: Limits | None = None, models_dir: str | None = None, device: torch.device | str = "cpu",
               host: str = "127.0.0.1", queue: JobQueue | None = None) -> Starlette:
    """The application. ``host``: the address served on; on a loopback address only
    requests for ``localhost`` or a loopback address are answered. ``queue``: a ready
    :class:`JobQueue` (tests), else one is made for ``limits``, ``models_dir`` and
    ``device``; it is closed, and its files deleted, when the application stops."""
    if queue is None:
        queue = JobQueue(Catalogue(models_dir), limits or Limits(), torch.device(device))
    limits = queue.limits
    page = {path: (resources.files("ciaosr.serve").joinpath("static", name).read_bytes(), kind)
            for path, (name, kind) in PAGE_FILES.items()}

    async def page_file(request: Request) -> Response:
        body, kind = page[request.url.path]
        return Response(body, media_type=kind, headers=SECURITY_HEADERS)

    async def config(request: Request) -> JSONResponse:
        return JSONResponse({"version": __version__, "device": str(queue.device),
                             "models": [m.public() for m in queue.catalogue.entries()],
                             "limits": limits.public(), "precisions": ["auto", *PRECISIONS],
                             "formats": list(FORMATS)}, headers=SECURITY_HEADERS)

    async def size(request: Request) -> JSONResponse:
        q = request.query_params
        try:
            width, height = int(q.get("width", "")), int(q.get("height", ""))
        except ValueError:
            return error(400, "width and height must be whole numbers of pixels")
        if width < 1 or height < 1:
            return error(400, "width and height must be at least 1 pixel")
        resize = Resize.parse(q.get("scale") or None, q.get("size") or None)
        h, w = resize.output_size((height, width), limits.max_pixels, RAISE_LIMIT)
        return JSONResponse({"width": w, "height": h, "pixels": w * h, "resize": resize.description},
                            headers=SECURITY_HEADERS)

    async def create_job(request: Request) -> JSONResponse:
        settings = Settings.parse(request.query_params, queue.catalogue, queue.device)
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limits.max_upload_bytes:
            return _too_large()
        name = upload_name(request.query_params.get("name"))
        with queue.slot():
            folder, job = queue.new_folder(), None
            try:
                path = folder / f"upload{input_extension(name)}"
                if not await _receive(request, path, limits.max_upload_bytes):
                    return _too_large()
                if path.stat().st_size == 0:
                    return error(400, "no image: send the image file as the request body")
                job = await run_in_threadpool(prepare, folder, path, name, settings, limits)
                queue.submit(job)
            finally:
                if job is None:
                    queue.discard(folder)
        return JSONResponse(queue.status(job.id), status_code=202, headers=SECURITY_HEADERS)

    def _too_large() -> JSONResponse:
        return error(413, f"the image is larger than this server's upload limit of {limits.upload_text}")

    def job_status(request: Request) -> JSONResponse:
        status = queue.status(request.path_params["job"])
        if status is None:
            return _no_job()
        return JSONResponse(status, headers=SECURITY_HEADERS)

    async def cancel_job(request: Request) -> JSONResponse:
        status = queue.cancel(request.path_params["job"])
        return _no_job() if status is None else JSONResponse(status, headers=SECURITY_HEADERS)

    def _no_job() -> JSONResponse:
        return error(404, f"no such job: it finished and was deleted (after its download, or "
                          f"{limits.keep_seconds / 60:g} minutes after it finished), or never existed")

    def input_png(request: Request) -> Response:
        job = queue.get(request.path_params["job"])
        path = None if job is None else job.folder / "input.png"
        if path is None or not path.is_file():
            return _no_job()
        return FileResponse(path, media_type="image/png", headers=SECURITY_HEADERS)

    def preview(request: Request) -> Response:
        job = queue.get(request.path_params["job"])
        path = None if job is None else job.preview_path
        if job is not None and job.state != "done":
            return error(409, f"the job is {job.state}: no result yet")
        if path is None:
            return _no_job()
        return FileResponse(path, media_type=MEDIA_TYPES.get("PNG" if path.suffix == ".png" else job.output.fmt),
                            headers=SECURITY_HEADERS)

    def result(request: Request) -> Response:
        job = queue.get(request.path_params["job"])
        if job is not None and job.state != "done":
            return error(409, f"the job is {job.state}: no result to download")
        if job is None or job.result_path is None:
            return _no_job()
        return FileResponse(job.result_path, media_type=MEDIA_TYPES[job.output.fmt], filename=job.output.name,
                            headers=SECURITY_HEADERS, background=BackgroundTask(queue.forget, job.id))

    def guarded(endpoint):
        """``endpoint`` (async), answered only with the write header (see the module's notes)."""
        async def wrapped(request: Request) -> Response:
            if request.headers.get(WRITE_HEADER) != "1":
                return error(403, "requests that change something need the header 'X-Ciaosr: 1' "
                                  "(pages of other sites cannot send it)")
            return await endpoint(request)
        return wrapped

    routes = [Route(path, page_file) for path in PAGE_FILES]
    routes += [
        Route("/api/config", config),
        Route("/api/size", size),
        Route("/api/jobs", guarded(create_job), methods=["POST"]),
        Route("/api/jobs/{job}", job_status, methods=["GET"]),
        Route("/api/jobs/{job}", guarded(cancel_job), methods=["DELETE"]),
        Route("/api/jobs/{job}/input", input_png),
        Route("/api/jobs/{job}/preview", preview),
        Route("/api/jobs/{job}/result", result),
    ]

    async def on_ciaosr_error(request: Request, exc: CiaosrError) -> JSONResponse:
        return error(503 if isinstance(exc, QueueFull) else 400, str(exc))

    async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail))

    async def on_disconnect(request: Request, exc: ClientDisconnect) -> Response:
        return Response(status_code=499)

    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        log.error("request %s %s failed", request.method, request.url.path, exc_info=exc)
        return error(500, f"internal error ({type(exc).__name__})")

    middleware = [Middleware(LoopbackHostsOnly)] if is_loopback(host) else []

    @asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            await run_in_threadpool(queue.close)

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan,
                    exception_handlers={CiaosrError: on_ciaosr_error, HTTPException: on_http_error,
                                        ClientDisconnect: on_disconnect, Exception: on_bug})
    app.state.queue = queue
    return app


class LoopbackHostsOnly:
    """Answer only requests whose Host is a loopback name (``hosts.LOOPBACK_NAMES``): a
    page of another site that has its own name resolve to 127.0.0.1 (DNS rebinding)
    still sends its own name, and is refused."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            host = Headers(scope=scope).get("host", "")
            name = host if host.endswith("]") else host.rsplit(":", 1)[0]
            if name.lower() not in LOOPBACK_NAMES:
                response = error(400, f"this server answers requests for {', '.join(LOOPBACK_NAMES)} only, "
                                      f"not {host[:60]!r}")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _receive(request: Request, path: Path, limit: int) -> bool:
    """Write the request's body to ``path``; False (and the file removed) past ``limit`` bytes."""
    size = 0
    with open(path, "wb") as f:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                break
            f.write(chunk)
    if size > limit:
        path.unlink()
        return False
    return True


__all__ = ["create_app", "PAGE_FILES"]
