"""``python -m cnnative.bench``: the native-vs-scipy benchmark (see cnnative.bench.signal)."""
import sys

from .signal import main

sys.exit(main())
