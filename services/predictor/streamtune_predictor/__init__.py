"""streamtune predictor: predictions for clean events, from hot-reloaded, checksum-verified model versions."""
