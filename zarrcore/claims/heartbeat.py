"""A background thread that keeps a writer claim renewed."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from zarrcore.errors import ClaimLost

if TYPE_CHECKING:
    from zarrcore.claims.lease import Claim

__all__ = ["Heartbeat"]

log = logging.getLogger(__name__)


class Heartbeat(threading.Thread):
    """Renews ``claim`` every ``interval`` seconds until stopped or the claim is lost.

    A failed renewal (a store error) is tried again at the next beat; once the claim lapses or is
    taken over the thread ends and ``claim.lost`` is true.
    """

    def __init__(self, claim: Claim, interval: float) -> None:
        super().__init__(name=f"zarrcore-claim-heartbeat {claim.path or '/'}", daemon=True)
        if not interval > 0:
            raise ValueError(f"heartbeat interval must be > 0, got {interval!r}")
        self.claim = claim
        self.interval = interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                self.claim.renew()
            except ClaimLost as exc:
                log.warning("%s", exc)
                return
            except Exception as exc:  # the claim stays in force until it lapses; try again
                log.warning("renewing %r failed, trying again: %s", self.claim, exc)

    def stop(self) -> None:
        """Stop beating and wait for the thread (unless called from it)."""
        self._stop_event.set()
        if threading.current_thread() is not self:
            self.join()
