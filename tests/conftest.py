import os

import hypothesis

# CI gets a larger, derandomised budget so a run is reproducible; local runs stay quick.
hypothesis.settings.register_profile("ci", max_examples=400, derandomize=True, deadline=None)
hypothesis.settings.register_profile("dev", max_examples=150, deadline=None)
hypothesis.settings.load_profile("ci" if os.environ.get("CI") else "dev")
