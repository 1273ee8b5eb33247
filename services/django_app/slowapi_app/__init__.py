"""The original study's FastAPI "slowapi" app, beside Django (see main.py)."""
