"""`python3 -m migrun_sdk wit`: the folder holding the contract's WIT, for `componentize-py -d`.
`python3 -m migrun_sdk path`: the folder to give componentize-py with `-p` so it bundles the SDK."""

import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
what = sys.argv[1] if len(sys.argv) > 1 else ""
if what == "wit":
    print(os.path.join(here, "wit"))
elif what == "path":
    print(os.path.dirname(here))
else:
    print("usage: python3 -m migrun_sdk wit|path", file=sys.stderr)
    sys.exit(2)
