"""`python -m attndeploy` is the `attndeploy` command."""

import sys

from attndeploy.cli.main import main

sys.exit(main())
