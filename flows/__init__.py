"""The conversations and the appointment lifecycle, as state machines."""
