"""A writer process for the claim tests: ``python claim_child.py CONFIG_JSON``.

It opens the store, prints ``ready``, waits for ``go`` on stdin, tries to take the claim and prints
one JSON line (``{"won": ...}`` or ``{"busy": message, "holder": owner}``). A winner holds the claim
until it reads ``release`` (or stdin closes), then prints ``released``.
"""

from __future__ import annotations

import json
import sys

import zarrcore
from zarrcore.errors import WriterBusy


def main() -> None:
    cfg = json.loads(sys.argv[1])
    store = zarrcore.open_store(cfg["url"], **cfg.get("options", {}))
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    try:
        claim = zarrcore.claim_writer(
            store, cfg["path"], owner=cfg["owner"], ttl=cfg.get("ttl", 2.0), wait=cfg.get("wait", 0.0),
            info={"role": "child"}, heartbeat=cfg.get("heartbeat", False),
        )
    except WriterBusy as exc:
        print(json.dumps({"busy": str(exc), "holder": exc.holder.owner}), flush=True)
        return
    print(json.dumps({"won": cfg["owner"], "generation": claim.info.generation, "expires": claim.info.expires}),
          flush=True)
    sys.stdin.readline()
    claim.release()
    print("released", flush=True)


if __name__ == "__main__":
    main()
