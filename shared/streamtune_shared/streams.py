"""Stream names and the one entry field every stream uses: the wire contract."""

RAW = "events.raw"
VALID = "events.valid"
CLEAN = "events.clean"
DLQ = "events.dlq"
SHARDS = "datasets.shards"
TRAIN_REQUESTS = "train.requests"
TRAIN_STATUS = "train.status"
MODELS_PUBLISHED = "models.published"
PREDICTIONS = "predictions"
PREDICTIONS_SHADOW = "predictions.shadow"
MODELS_CONTROL = "models.control"

# Every entry carries one field holding a JSON document.
PAYLOAD_FIELD = "payload"
