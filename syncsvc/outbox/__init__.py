"""The way out of the system of record: outbox streams in Redis, published to Kafka by the relay."""
