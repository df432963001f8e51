"""Africa's Talking: everything about its wire format, in one module.

(Module docstring to be completed: the USSD callback, the end-of-session notice, the inbound
SMS form, the delivery report, and the SMS API, each with a real example payload.)
"""

from __future__ import annotations

# ---- Inbound: USSD callback, end-of-session notice, inbound SMS -----------------------------


# ---- Outbound: the SMS API through the official SDK, and delivery reports --------------------
