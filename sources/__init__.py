"""Where events come from: the simulator, JSONL file replay and (later) Kafka."""
