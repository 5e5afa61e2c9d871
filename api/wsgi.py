"""The module-level WSGI app that Zappa (``app_function: api.wsgi.app``) and gunicorn run."""

from api import create_app

app = create_app()
