"""``ciaosr serve``: the upscaling web page (``ciaosr.serve``), on this machine.

Needs the ``web`` extra (Starlette and uvicorn); without it the command says how to
install it, in one line. Binds to 127.0.0.1 unless ``--host`` says otherwise.
"""

from __future__ import annotations

import socket
import sys

from ..errors import CiaosrError
from ..serve.hosts import is_loopback
from .command import AUTO_DEVICE_HELP, Command, add_device, add_threads

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
INSTALL_HINT = 'the web page needs the web extra: pip install "ciaosr[web]"'


def arguments(p) -> None:
    from ..serve.limits import MIB, Limits

    d = Limits()
    p.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to listen on (default {DEFAULT_HOST}: this machine only; 0.0.0.0 serves "
                        f"everyone who can reach it)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--models-dir", default=None, metavar="DIR",
                   help="offer the checkpoint files in DIR (*.safetensors, *.pth) besides the shipped models")
    add_device(p, help=AUTO_DEVICE_HELP)
    add_threads(p, help="CPU threads (default auto: the cores not busy with other work)", default="auto")
    p.add_argument("--max-upload-mb", type=float, default=d.max_upload_bytes / MIB, metavar="MB",
                   help=f"largest upload in MiB (default {d.max_upload_bytes / MIB:g})")
    p.add_argument("--max-pixels", type=int, default=d.max_pixels, metavar="N",
                   help=f"largest output, and input, in pixels (default {d.max_pixels:,} = 4096 x 4096)")
    p.add_argument("--max-queue", type=int, default=d.max_queue, metavar="N",
                   help=f"jobs that may wait behind the running one (default {d.max_queue})")
    p.add_argument("--keep-minutes", type=float, default=d.keep_seconds / 60, metavar="MIN",
                   help=f"delete a result nobody downloaded this long after it finished "
                        f"(default {d.keep_seconds / 60:g}); a download deletes it at once")


def run(args) -> int:
    try:
        import uvicorn

        from ..serve.app import create_app
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("starlette", "uvicorn", "anyio"):
            raise CiaosrError(INSTALL_HINT) from None
        raise
    from ..runtime import resolve_device, set_threads
    from ..serve.limits import MIB, Limits

    limits = Limits(max_upload_bytes=int(args.max_upload_mb * MIB), max_pixels=args.max_pixels,
                    max_queue=args.max_queue, keep_seconds=args.keep_minutes * 60)
    threads = set_threads(args.threads)
    device = resolve_device(args.device)
    sock = listen(args.host, args.port)
    port = sock.getsockname()[1]
    try:
        app = create_app(limits=limits, models_dir=args.models_dir, device=device, host=args.host)
    except BaseException:
        sock.close()
        raise
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"ciaosr serve: http://{shown}:{port}/ ({device}, {threads} thread(s); Ctrl-C stops)", flush=True)
    if not is_loopback(args.host):
        print(f"note: listening on {args.host}: everyone who can reach this machine can use the page",
              file=sys.stderr)
    config = uvicorn.Config(app, log_level="warning", access_log=False)
    try:
        # uvicorn shuts down gracefully (the app deletes its files), then raises the
        # signal that stopped it again: Ctrl-C ends here, SIGTERM ends the process.
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    print("ciaosr serve: stopped", flush=True)
    return 0


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host``:``port`` (0: any free port), or a one-line error."""
    if not 0 <= port <= 65535:
        raise CiaosrError(f"--port must be 0 to 65535, got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except (OSError, UnicodeError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise CiaosrError(f"--host {host}: not an address of this machine ({why})") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise CiaosrError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    return sock


COMMAND = Command(
    "serve", help="serve a web page that upscales images (pip install \"ciaosr[web]\")",
    description="Serve one web page that upscales an image: drop or pick an image, choose the model "
                "and the scale or size, watch the progress, compare before and after, download. "
                "Jobs run one at a time, in order; uploads and results live in a temporary folder "
                "and are deleted after their download or --keep-minutes. docs/serving.md has the "
                "details.",
    arguments=arguments, run=run)
