"""The RDB peer: parses a dump with rdb-py (PyPI `rdb-py`, a Rust reader behind a Python iterator), counting keys,
so bench/rdb/run.mjs can time it beside ours on the same file. rdbtools, the usual choice, stops at RDB version 9;
redis-server 7.0 writes version 10.

    python3 -m venv target/rdb-peer && target/rdb-peer/bin/pip install rdb-py
    target/rdb-peer/bin/python bench/rdb/peer.py FILE
"""
import json
import sys
import time

import rdb

started = time.perf_counter()
keys = 0
for item in rdb.RdbDecoder(sys.argv[1]):
    if "key" in item and item.get("type") != "aux_field":
        keys += 1
seconds = time.perf_counter() - started
print(json.dumps({"keys": keys, "seconds": seconds}))
