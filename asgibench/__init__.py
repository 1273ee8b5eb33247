"""asgibench: one Locust workload against every way of serving Django (and FastAPI beside it)."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
__version__ = "0.1.0"
