"""streamtune predictor: predictions for clean events, from hot-reloaded, checksum-verified model versions."""

import os

# Nothing is ever downloaded from a hub: set before transformers / huggingface_hub are imported.
os.environ["HF_HUB_OFFLINE"] = "1"
