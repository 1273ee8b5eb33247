"""`python -m asgibench ...`: the command line (asgibench.cli)."""
from asgibench.cli import main

raise SystemExit(main())
