"""`python -m asgibench.compose ...` (compose/compose.yaml's locust-master service runs this)."""
from asgibench import procs
from asgibench.compose import main

raise SystemExit(procs.run_as_main(main))
