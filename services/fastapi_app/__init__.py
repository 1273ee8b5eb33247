"""FastAPI (and one framework-free) apps serving the JSON contract from Django's tables, one module per ORM.

Each module exposes `app` (ASGI); shared settings, pagination, serialization, SQL and routes live in common.
"""
