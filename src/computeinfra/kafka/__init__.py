"""Task aggregation: the local Kafka broker, client configuration, topics."""
