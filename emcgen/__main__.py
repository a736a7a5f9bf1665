"""`python -m emcgen` is the `emcgen` command."""
import sys

from .cli import main

sys.exit(main())
