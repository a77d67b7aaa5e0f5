"""The way in: Voucherify's activities (signed webhooks, the REST API) become records on the
input topic, written with the same codec, key rule and headers as `activity-consumer produce`."""
