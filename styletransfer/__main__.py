"""`python -m styletransfer SUBCOMMAND ...`: the `styletransfer` command, from a checkout."""
import sys

from styletransfer.cli.main import main

sys.exit(main())
