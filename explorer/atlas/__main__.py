"""``python -m explorer.atlas build ...`` (see ``explorer.atlas.build``)."""

import sys

from explorer.atlas.build import main

sys.exit(main())
