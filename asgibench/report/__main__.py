"""`python -m asgibench.report ...`: the same as `python -m asgibench report ...`."""
import sys

from asgibench.report import main

sys.exit(main())
