"""The HTTP edge: Africa's Talking webhooks, delivery reports, the simulator."""
