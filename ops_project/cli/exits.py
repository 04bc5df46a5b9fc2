"""Exit codes scripts rely on (README: "Exit codes")."""

OK = 0
FAILED = 1  # the operation failed (unreachable region, full disk, wrong key); nothing was marked complete
USAGE = 2  # bad usage (argparse's own code)
UNTRUSTED = 3  # verification failed or the backup is corrupt: it cannot be trusted
NO_BACKUP = 4  # no such backup
INTERRUPTED = 130
