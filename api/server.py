"""``headwater serve``: the same app Zappa deploys (``api.wsgi:app``), under gunicorn, locally.

Each worker process imports ``api.wsgi`` after the fork, so each builds the app and
loads the model once. gunicorn is a development and self-hosting dependency (the
``api`` extra); the Lambda package does not contain it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

APP = "api.wsgi:app"


@dataclass(frozen=True)
class ServerOptions:
    """How gunicorn listens and how many workers it runs."""

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    # Above 1: gthread workers, which keep connections alive (about 1.6x the requests/s of
    # sync workers here); the model is immutable and its cache locked, so threads are safe.
    threads: int = 4
    timeout: int = 30
    access_log: bool = False

    def gunicorn_settings(self) -> dict[str, Any]:
        """The options as gunicorn settings."""
        settings: dict[str, Any] = {
            "bind": f"{self.host}:{self.port}",
            "workers": self.workers,
            "threads": self.threads,
            "worker_class": "gthread" if self.threads > 1 else "sync",
            "timeout": self.timeout,
            "graceful_timeout": 5,
            "keepalive": 5,
            "errorlog": "-",
            "loglevel": "info",
            "proc_name": "headwater-api",
            # gunicorn 24+: no control socket in $HOME (two servers would share its path).
            "control_socket_disable": True,
        }
        if self.access_log:
            settings["accesslog"] = "-"
        return settings


def run_server(options: ServerOptions) -> None:
    """Run gunicorn in the foreground until it is stopped (SIGINT or SIGTERM)."""
    from gunicorn.app.base import BaseApplication

    class _Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.gunicorn_settings().items():
                if key in self.cfg.settings:  # older gunicorn lacks the newest settings
                    self.cfg.set(key, value)

        def load(self) -> Any:
            from gunicorn.util import import_app

            return import_app(APP)

    _Server().run()
