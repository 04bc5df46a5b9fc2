"""Exit codes scripts rely on (README: "Exit codes")."""

OK = 0
FAILED = 1  # the operation failed (unreachable region, full disk, wrong key); nothing was marked complete
USAGE = 2  # bad usage: an unknown flag, a missing argument, a database or region the configuration does not name
UNTRUSTED = 3  # verification failed or the backup is corrupt: it cannot be trusted
NO_BACKUP = 4  # no such backup
INTERRUPTED = 130

EPILOG = f"""exit codes:
  {OK}    done
  {FAILED}    failed: the operation could not be carried out (a region unreachable, a disk full, a key
       missing); nothing was marked complete
  {USAGE}    bad usage: an unknown flag, a missing argument, or a database or region the configuration
       does not name
  {UNTRUSTED}    untrusted: verification failed or the backup is corrupt
  {NO_BACKUP}    no such backup
  {INTERRUPTED}  interrupted (Ctrl-C); nothing was marked complete"""
