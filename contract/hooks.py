"""Schemathesis hooks for secapp's contract test.

The stateful phase chains calls it finds in the document: it lists tokens
and revokes them, lists applications and disables them. Left alone it
would revoke the very token it runs with (or disable, or demote, its
application), and every later call would be refused: the run would test
nothing but 401s. These hooks steer exactly those calls elsewhere and
leave every other case as generated.
"""

import os

import schemathesis

TOKEN_ID = os.environ["SECAPP_CONTRACT_TOKEN_ID"]
APP = os.environ["SECAPP_CONTRACT_APP"]
# The roles the run's own application must keep.
ROLES = os.environ["SECAPP_CONTRACT_ROLES"].split(",")

# Revoking this id answers 404 unknown_token, which the document lists.
ANOTHER_TOKEN = "tok_0000000000000000"


@schemathesis.hook
def map_case(context, case):
    path = case.operation.path
    method = case.operation.method.upper()
    params = case.path_parameters or {}
    if method == "DELETE" and path == "/admin/tokens/{id}" and params.get("id") == TOKEN_ID:
        case.path_parameters = {**params, "id": ANOTHER_TOKEN}
    if (
        method == "PATCH"
        and path == "/admin/apps/{name}"
        and params.get("name") == APP
        and isinstance(case.body, dict)
    ):
        body = dict(case.body)
        if body.get("disabled") is True:
            body["disabled"] = False
        roles = body.get("roles")
        if isinstance(roles, list) and all(isinstance(role, str) for role in roles):
            body["roles"] = roles + [role for role in ROLES if role not in roles]
        case.body = body
    return case
