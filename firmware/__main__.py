"""`python -m firmware` is the same as the `deskphone` console script."""

from firmware.cli import main

raise SystemExit(main())
