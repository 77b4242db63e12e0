"""`python -m account_doctor …`: the operator CLI (see account_doctor.cli)."""

import sys

from account_doctor.cli import main

sys.exit(main())
