"""WSGI entry point for production: `gunicorn 'tool.web.wsgi:app'`."""

from tool.web import create_app

app = create_app()
