"""`python -m account_doctor_cli …`: the same as the `account-doctor` console script."""

import sys

from account_doctor_cli.main import main

sys.exit(main())
