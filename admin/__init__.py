"""Registration desk, service-centre console and admin REST API."""
