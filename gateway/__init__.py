"""TikaLine's edge: webhooks, providers, the Redis store, outbound SMS, config and CLI."""
