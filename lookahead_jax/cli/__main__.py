"""`python -m lookahead_jax.cli`: the `lookahead-jax` command."""

import sys

from lookahead_jax.cli import main

sys.exit(main())
