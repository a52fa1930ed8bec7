"""streamtune ingestion: validates, cleans and deduplicates device events (events.raw -> events.valid)."""
