"""One module per SMS/USSD provider; each owns its wire format and nothing else."""
