"""The Python peer of `deno task bench process`: one thread reads a PostgreSQL stderr log with
RDS's prefix (%t:%r:%u@%d:[%p]:), folds DETAIL/STATEMENT/... lines of the same pid and unprefixed
(tab-indented) lines into the record before them, and JSON-encodes every record, as `process`
does before posting; the JSON goes nowhere. Prints the records and its own CPU seconds.

python3 tests/bench/process_peer.py FILE
"""
import json
import re
import resource
import sys

PREFIX = re.compile(
    r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d+)?)(?: ([A-Za-z][A-Za-z0-9/_+-]*|[+-]\d{2}(?::?\d{2})?))?"
    r":(.*?):\[(\d*)\]:([A-Z][A-Z0-9]*):[ \t]*(.*)$"
)
CONTINUATION = {"DETAIL", "HINT", "STATEMENT", "CONTEXT", "QUERY", "LOCATION"}


def main(path):
    records = 0
    size = 0
    pending = None
    field = "message"

    def emit(r):
        nonlocal records, size
        records += 1
        size += len(json.dumps(r))

    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            m = PREFIX.match(line)
            if m:
                pid = int(m.group(4)) if m.group(4) else None
                severity = m.group(5)
                if severity in CONTINUATION and pending is not None and pending.get("pid") == pid:
                    field = severity.lower()
                    pending[field] = m.group(6)
                    continue
                if pending is not None:
                    emit(pending)
                client, _, userdb = m.group(3).rpartition(":")
                user, _, db = userdb.partition("@")
                pending = {"log_time": m.group(1) + (" " + m.group(2) if m.group(2) else ""),
                           "client": client, "user": user, "database": db, "pid": pid,
                           "severity": severity, "message": m.group(6)}
                field = "message"
            elif pending is not None:
                pending[field] += "\n" + (line[1:] if line.startswith("\t") else line)
            elif line:
                emit({"message": line, "parse_error": True})
    if pending is not None:
        emit(pending)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"records": records, "json_bytes": size, "cpu_s": ru.ru_utime + ru.ru_stime,
                      "max_rss_kb": ru.ru_maxrss}))


main(sys.argv[1])
