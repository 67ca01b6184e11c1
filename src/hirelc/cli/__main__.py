"""`python -m hirelc.cli`: the `hirelc` command."""

import sys

from hirelc.cli import main

sys.exit(main())
