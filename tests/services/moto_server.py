"""moto_server with DynamoDB's writes made atomic, as they are in DynamoDB.

moto serves requests on threads and checks a ConditionExpression, then writes, with nothing
between: two conditional writes to one item that arrive together can both pass (two `discover`
replicas claiming the same change both won, now and then). Real DynamoDB evaluates the condition
and writes atomically; one lock around moto's item writes gives the same. Everything else is
moto's own `moto_server`, with its arguments.
"""

import functools
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

_writes = threading.Lock()


def _atomic(method):
    @functools.wraps(method)
    def locked(*args, **kwargs):
        with _writes:
            return method(*args, **kwargs)

    return locked


for _name in ("put_item", "update_item", "delete_item", "transact_write_items"):
    setattr(DynamoDBBackend, _name, _atomic(getattr(DynamoDBBackend, _name)))

if __name__ == "__main__":
    sys.exit(main())
