from asgibench.cli import main

raise SystemExit(main())
