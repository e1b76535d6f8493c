"""``python -m crmrules`` runs the command line."""

import sys

from crmrules.cli import main

sys.exit(main())
