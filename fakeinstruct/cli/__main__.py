import sys

from fakeinstruct.cli import main

sys.exit(main())
