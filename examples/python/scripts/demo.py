"""Runs inside the sandbox: the standard library loads from trusted files."""
import hashlib
import json
import os
import sqlite3
import ssl
import sys

db = sqlite3.connect(":memory:")
db.execute("create table t (x)")
db.executemany("insert into t values (?)", [(i,) for i in range(10)])
print(json.dumps({
    "python": sys.version.split()[0],
    "pid": os.getpid(),
    "sum": db.execute("select sum(x) from t").fetchone()[0],
    "sha256": hashlib.sha256(b"moat").hexdigest()[:16],
    "openssl": ssl.OPENSSL_VERSION.split()[1],
    "host env leaked": "HOME" in os.environ,
}))
try:
    open(json.__file__, "ab")
    print("ERROR: the standard library is writable")
    sys.exit(1)
except PermissionError:
    print("trusted files are read-only")
