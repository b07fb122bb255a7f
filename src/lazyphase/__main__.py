"""``python -m lazyphase``: the command line (:mod:`lazyphase.pipeline.cli`)."""

import sys

from lazyphase.pipeline.cli import main

sys.exit(main())
