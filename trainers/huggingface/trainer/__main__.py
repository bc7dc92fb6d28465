"""``python -m trainer``: same as the ``trainyard-trainer`` script."""

import sys

from trainer.main import main

sys.exit(main())
