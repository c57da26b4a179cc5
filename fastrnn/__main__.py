import sys

from fastrnn.cli import main

sys.exit(main())
