import sys

from lifeline.cli import main

sys.exit(main())
