"""The two ways a command fails: bad input (exit 2) and a run that could not finish (exit 1).
Both carry one line for stderr; the CLI prints it and exits."""


class AsgibenchError(Exception):
    exit_code = 1


class UsageError(AsgibenchError):
    """The user asked for something that does not exist or makes no sense (unknown variant, bad number)."""

    exit_code = 2


class RunError(AsgibenchError):
    """Something real failed: database unreachable, port taken, server died, contract broken."""

    exit_code = 1
