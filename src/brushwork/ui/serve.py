"""``brushwork serve``: who may reach the studio, and the settings Gradio is launched with.

Safe by default: the studio binds the loopback address. Binding anything else prints a warning
and needs a password (``--auth user:password`` or a file of them) unless the user says
``--insecure-no-auth``. Gradio's analytics, monitoring endpoints, API page, server-side rendering
and MCP server are off; the browser may fetch only files in the output and runs folders and the
upload folder (Gradio's cache, placed inside the output folder).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from brushwork.errors import BrushworkError
from brushwork.ui.studio import Studio, StudioSettings

log = logging.getLogger("brushwork.studio")
# What the page's file route may serve: the images and videos brushwork writes or reads. Anything
# else (an uploaded .html or .svg above all, which a browser would run in the studio's origin) is
# refused, and what is served is marked nosniff so no browser reads an image as a page.
SERVABLE = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".mp4"}


@dataclass
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 7860
    auth: list[tuple[str, str]] = field(default_factory=list)
    insecure_no_auth: bool = False
    max_queue: int = 16  # requests waiting at once; more get "queue is full" in the page
    device_jobs: int = 1  # model-running requests at once (one GPU job at a time)


def parse_auth(pairs: list[str] | None = None, auth_file: str | None = None) -> list[tuple[str, str]]:
    """``user:password`` pairs, from the command line and/or a file (one pair per line, '#'
    comments); a malformed pair is one line naming it, never echoing the password."""
    lines = list(pairs or [])
    if auth_file:
        try:
            lines += [line.strip() for line in Path(auth_file).read_text().splitlines()
                      if line.strip() and not line.strip().startswith("#")]
        except OSError as exc:
            raise BrushworkError(f"cannot read --auth-file {auth_file}: {exc.strerror or exc}") from None
    out = []
    for i, line in enumerate(lines, 1):
        user, sep, password = line.partition(":")
        if not sep or not user.strip() or not password:
            raise BrushworkError(f"auth entry {i}: expected user:password")
        out.append((user.strip(), password))
    return out


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(options: ServeOptions) -> str | None:
    """Refuse an exposed server without a password; the warning to print for an exposed one."""
    if is_loopback(options.host):
        return None
    if not options.auth and not options.insecure_no_auth:
        raise BrushworkError(f"--host {options.host} lets other machines reach the studio (and its "
                             f"runs, data and GPU): give --auth USER:PASSWORD (or --auth-file FILE), "
                             f"or --insecure-no-auth if this network is trusted")
    who = "anyone who can reach it" if not options.auth else "anyone with a password"
    return (f"warning: the studio listens on {options.host}:{options.port}; {who} can use it "
            "(traffic is unencrypted: put it behind HTTPS to use it over a network you do not trust)")


FILE_ROUTE = re.compile(r"/file[=/]")  # Gradio's /file=PATH and its older /file/PATH


class FileGuard:
    """ASGI middleware in front of Gradio's ``/file=`` route (see ``SERVABLE``)."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        route = FILE_ROUTE.search(path)
        if route is None:
            return await self.app(scope, receive, send)
        if Path(path[route.end():]).suffix.lower() not in SERVABLE:
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
            return await send({"type": "http.response.body",
                               "body": b"brushwork studio: only images and videos are served"})

        async def send_nosniff(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-content-type-options", b"nosniff")]}
            await send(message)

        await self.app(scope, receive, send_nosniff)


def launch(settings: StudioSettings, options: ServeOptions, block: bool = True):
    """Start the studio's web server (blocking unless ``block`` is False: then (app, url))."""
    warning = check_exposure(options)
    if warning:
        print(warning, file=sys.stderr)
    # Before Gradio is imported: its upload cache lives in the output folder, and it phones nowhere.
    os.environ["GRADIO_TEMP_DIR"] = str(settings.uploads)
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("GRADIO_SERVER_NAME", options.host)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from starlette.middleware import Middleware

    from brushwork.ui.app import CSS, build_app, theme

    studio = Studio(settings)
    demo = build_app(studio, options.device_jobs)
    demo.queue(max_size=options.max_queue, default_concurrency_limit=options.device_jobs,
               api_open=False)
    app, url, _ = demo.launch(
        server_name=options.host, server_port=options.port, auth=options.auth or None,
        auth_message="brushwork studio", max_file_size=int(settings.max_upload_mb * 2**20),
        allowed_paths=[str(settings.outputs), str(settings.runs)], enable_monitoring=False,
        ssr_mode=False, mcp_server=False, run_history=False, show_error=False, prevent_thread_lock=True,
        footer_links=["settings"], theme=theme(), css=CSS, quiet=True, inbrowser=False, share=False,
        app_kwargs={"middleware": [Middleware(FileGuard)]})
    print(f"brushwork studio running at {url} (Ctrl-C stops it)", file=sys.stderr, flush=True)
    if block:
        demo.block_thread()  # until Ctrl-C; training jobs keep running in their own processes
    return app, url
