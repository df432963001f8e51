"""What a provider's send comes to, reduced to the three things the outbox worker acts on."""

from __future__ import annotations

from dataclasses import dataclass

SENT = "sent"  # the provider took the message; it has a provider message id
RETRY = "retry"  # not sent this time; worth trying again later
REJECTED = "rejected"  # refused for good (bad number, blacklisted…): a dead letter at once
CONFIG = "config"  # the account or sender is set up wrongly: retried, and shouted about


@dataclass(frozen=True)
class SendResult:
    """One send's outcome, the provider's message id when sent, and why when not."""

    outcome: str
    message_id: str = ""
    detail: str = ""

    @property
    def sent(self) -> bool:
        return self.outcome == SENT
