"""The locust-master service (runs inside the runner image): wait until the row answers its I/O
probe, then run `asgibench bench ROW --target http://ROW:8000 --remote-workers N ...` in this process
(contract check, warm-up, Locust master of the locust-worker containers, results/<row>/<run-id>/):
the same options (options.build_options), the same pipeline.bench and the same console lines as a
local `asgibench bench`. A new option of the service is one add_argument in add_arguments and,
if `bench` must see it, one word in master_argv.
"""
from __future__ import annotations

import shlex

from asgibench import console, errors, options, pipeline, server, variants
from asgibench.compose.services import DEFAULT_LOCUST_WORKERS, MASTER_PORT, PORT
from asgibench.errors import RunError, UsageError

READY_WAIT_SECONDS = 240.0  # below Locust workers' ~300 s of connection retries
PROG = "python -m asgibench.compose locust-master"


def wait_ready(url: str, timeout: float) -> None:
    """Until the row answers its I/O probe: `up` of both profiles starts the master with the row."""
    problem = server.wait_ready(url, timeout, waiting=lambda last: print(f"asgibench: waiting for {url} ({last})",
                                                                         flush=True))
    if problem:
        raise RunError(f"{url} did not answer within {timeout:.0f}s ({problem}): is the row up? "
                       "`docker compose -f compose/compose.yaml --profile <row> up -d`")


def master_argv(row: str, load_args: str, expect_workers: int, *, host: str | None = None, port: int = PORT,
                master_bind: str = "0.0.0.0", master_port: int = MASTER_PORT) -> list[str]:
    """The `asgibench bench` command line of the locust-master container: the row's server is an
    external --target (the service <row>:8000), the workers are the locust-worker containers."""
    variant = variants.get(row)
    try:
        extra = shlex.split(load_args)
    except ValueError as e:  # unbalanced quotes in LOAD_ARGS
        raise UsageError(f"LOAD_ARGS: {e}") from None
    return ["bench", variant.name, "--target", f"http://{host or variant.name}:{port}", "--allow-remote",
            "--remote-workers", str(expect_workers), "--master-bind", master_bind, "--master-port", str(master_port),
            *extra]


def bench_options(bench: list[str]) -> options.BenchOptions:
    """master_argv's `bench ...` words, parsed and built exactly as `asgibench bench` does."""
    assert bench[0] == "bench", bench
    return options.build_options(options.bench_parser().parse_args(bench[1:]))


def add_arguments(p) -> None:
    p.add_argument("row")
    p.add_argument("--expect-workers", type=int, default=DEFAULT_LOCUST_WORKERS)
    p.add_argument("--load-args", default="", help="`bench`'s load options as one string")
    p.add_argument("--host", help="the row's server host (default: its service name)")
    p.add_argument("--port", type=int, default=PORT)
    p.add_argument("--master-bind", default="0.0.0.0")
    p.add_argument("--master-port", type=int, default=MASTER_PORT)
    p.add_argument("--wait", type=float, default=READY_WAIT_SECONDS, help="seconds to wait for the row")


def run(a) -> int:
    """The service, from its parsed arguments; errors propagate (the caller maps them)."""
    bench = master_argv(a.row, a.load_args, a.expect_workers, host=a.host, port=a.port,
                        master_bind=a.master_bind, master_port=a.master_port)
    variant = variants.get(a.row)
    wait_ready(f"{bench[3]}{variant.io_probe}?seconds=0", a.wait)
    print(f"asgibench: {' '.join(bench)}", flush=True)
    opts = bench_options(bench)
    done = pipeline.bench(opts)
    console.print_bench(opts, done)
    pipeline.require_verdicts(done)
    return 0


def locust_master(argv: list[str]) -> int:
    """`locust-master ROW ...` words -> exit status (errors.exit_code: one line on stderr)."""
    def parse_and_run():
        p = options.Parser(prog=PROG)
        add_arguments(p)
        return run(p.parse_args(argv))

    return errors.exit_code(parse_and_run)
