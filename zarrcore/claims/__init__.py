"""Writer claims: at most one live writer per array, group or dataset.

>>> import zarrcore
>>> store = zarrcore.storage.MemoryStore()
>>> with zarrcore.claim_writer(store, "a", owner="run-1", ttl=30) as claim:
...     zarrcore.current_writer(store, "a").owner
'run-1'
>>> zarrcore.current_writer(store, "a") is None
True

The claim uses only create-only puts, which every store has (see docs/writers.md).
"""

from zarrcore.claims.lease import Claim, claim_writer, current_writer
from zarrcore.claims.record import BOOKKEEPING_DIR, CLAIMS_DIR, ClaimInfo, claims_prefix

__all__ = ["BOOKKEEPING_DIR", "CLAIMS_DIR", "Claim", "ClaimInfo", "claim_writer", "claims_prefix", "current_writer"]
