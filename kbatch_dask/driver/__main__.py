import sys

from .local import main

sys.exit(main(sys.argv[1:]))
