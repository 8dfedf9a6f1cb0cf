"""Uses the Python client generated from secapp's /openapi.json against a
running server: publishes, polls with the server-held cursor, polls with a
client-held cursor and a long poll, reads the history, and reads the typed
errors. Exits non-zero (an AssertionError) on any surprise.

    python3 use_client.py BASE_URL ADMIN_TOKEN   (secapp_py on PYTHONPATH)
"""

import sys
import threading
import time

from secapp_py import AuthenticatedClient
from secapp_py.api.admin import create_app, issue_token
from secapp_py.api.criticality import history, poll, publish
from secapp_py.models import (
    CurrentState,
    Empty,
    ErrorBody,
    HistoryAnswer,
    NewApp,
    NewAppRolesItem,
    NewToken,
    PublishAnswer,
    PublishRequest,
)


def main(base: str, admin_token: str) -> None:
    admin = AuthenticatedClient(base_url=base, token=admin_token)

    # Register a producer and a consumer, each with a token of its own.
    tokens = {}
    for name, role in [("py-producer", NewAppRolesItem.PUBLISH), ("py-consumer", NewAppRolesItem.CONSUME)]:
        created = create_app.sync_detailed(client=admin, body=NewApp(name=name, roles=[role]))
        assert created.status_code == 201, created
        issued = issue_token.sync(client=admin, name=name, body=NewToken(label="python client test"))
        tokens[name] = issued.token
    producer = AuthenticatedClient(base_url=base, token=tokens["py-producer"])
    consumer = AuthenticatedClient(base_url=base, token=tokens["py-consumer"], timeout=30.0)

    # Nothing published yet: {}.
    nothing = poll.sync(client=consumer, app_name="py-consumer")
    assert isinstance(nothing, Empty), nothing

    # Publish with an idempotency key; the retry is recorded once.
    request = PublishRequest(current_status=4, change_at="2026-03-01T12:05:00Z")
    first = publish.sync(client=producer, body=request, app_name="py-producer", idempotency_key="py-1")
    assert isinstance(first, PublishAnswer), first
    again = publish.sync(client=producer, body=request, app_name="py-producer", idempotency_key="py-1")
    assert again.processed_id == first.processed_id, (first, again)

    # The server-held cursor tells it once.
    told = poll.sync(client=consumer, app_name="py-consumer")
    assert isinstance(told, CurrentState), told
    assert (told.current_status, told.status_change_id, told.change_at) == (
        4,
        first.processed_id,
        "2026-03-01T12:05:00Z",
    ), told
    assert isinstance(poll.sync(client=consumer, app_name="py-consumer"), Empty)

    # A client-held cursor and a long poll that a publish wakes.
    assert isinstance(poll.sync(client=consumer, app_name="py-consumer", after=first.processed_id), Empty)
    woken = {}

    def wait() -> None:
        woken["state"] = poll.sync(client=consumer, app_name="py-consumer", after=first.processed_id, wait=20.0)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.3)
    second = publish.sync(
        client=producer,
        body=PublishRequest(current_status=5, change_at="2026-03-01T12:06:00Z"),
        app_name="py-producer",
    )
    waiter.join(timeout=10)
    assert not waiter.is_alive(), "the long poll was not woken"
    assert isinstance(woken["state"], CurrentState), woken
    assert woken["state"].status_change_id == second.processed_id, (woken, second)

    # The history, newest first.
    changes = history.sync(client=admin, limit=10)
    assert isinstance(changes, HistoryAnswer), changes
    assert [c.processed_id for c in changes.changes][:2] == [second.processed_id, first.processed_id], changes

    # Errors are typed: a level out of range, a consumer publishing, a bad token.
    bad = publish.sync_detailed(client=producer, body=PublishRequest(current_status=9), app_name="py-producer")
    assert bad.status_code == 422 and isinstance(bad.parsed, ErrorBody), bad
    assert bad.parsed.error == "level_out_of_range", bad.parsed
    forbidden = publish.sync_detailed(client=consumer, body=PublishRequest(current_status=2), app_name="py-consumer")
    assert forbidden.status_code == 403 and forbidden.parsed.error == "missing_role", forbidden
    stranger = AuthenticatedClient(base_url=base, token="secapp_not-a-token")
    refused = poll.sync_detailed(client=stranger, app_name="py-consumer")
    assert refused.status_code == 401 and refused.parsed.error == "invalid_token", refused
    print("python client: publish, poll, after, wait, history and errors all as documented")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
