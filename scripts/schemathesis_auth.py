"""Schemathesis auth hook for scripts/schemathesis: the admin logs in again every few seconds.

Operations of the run may revoke the admin's tokens (C9 `DELETE /api/users/{id}/tokens`); with a
fixed token every later operation would then only see 401. A fresh login keeps them reachable.
A login that is refused (the run disabled the admin) or that answers a limited token (the run
enforced MFA enrolment) keeps the last full token instead.
"""

import json
import os
import urllib.request

import schemathesis

BASE = os.environ["GATEHOUSE_SCHEMATHESIS_BASE"]
PASSWORD = os.environ["GATEHOUSE_SCHEMATHESIS_PASSWORD"]


def login():
    body = json.dumps({"username": "admin", "password": PASSWORD, "expireTimeInHours": 2})
    request = urllib.request.Request(
        BASE + "/api/login",
        data=body.encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer = json.load(response)
    if answer.get("needsMfa") or answer.get("enforceMFAEnrollment") or not answer.get("token"):
        return None
    return answer["token"]


@schemathesis.auth(refresh_interval=15)
class AdminToken:
    last = None

    def get(self, case, ctx):
        try:
            AdminToken.last = login() or AdminToken.last
        except Exception:  # noqa: BLE001 - any failure keeps the last token
            pass
        return AdminToken.last

    def set(self, case, data, ctx):
        if data:
            case.headers = case.headers or {}
            case.headers["Authorization"] = f"Bearer {data}"
