"""The operator commands: ``flask --app app …`` for data (``data``) and for SMS (``sms``)."""
