import sys

from memopt.cli.commands import main

sys.exit(main())
