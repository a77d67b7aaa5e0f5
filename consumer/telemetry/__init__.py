"""What the worker tells its operators: logs (librdkafka's included), metrics and probes."""
