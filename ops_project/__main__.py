import sys

from ops_project.cli import main

sys.exit(main())
