"""The inspectors' workbench: server-rendered pages and a JSON API (FastAPI), see app.py."""
