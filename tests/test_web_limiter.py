"""The login limiter (issue 21, item 4): per account and per client address separately; a proxy's word only when trusted."""

from __future__ import annotations

import dataclasses

from test_web import CSRF, PASSWORD, Browser, app, client, lab, with_password  # noqa: F401  (shared fixtures)

from vestige_web import create_app


def attempt(client, username: str, password: str, addr: str = "192.0.2.1", forwarded: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    response = client.post("/login", data={"username": username, "password": password, "csrf_token": CSRF},
                           environ_base={"REMOTE_ADDR": addr}, headers=headers)
    return response.status_code


def fail(client, app, username: str, addr: str = "192.0.2.1", forwarded: str | None = None, times: int | None = None) -> None:
    for _ in range(times or app.config["LOGIN_MAX_FAILURES"]):
        assert attempt(client, username, "wrong password", addr, forwarded) == 401


def test_failures_for_one_account_do_not_lock_out_others_at_the_same_address(client, app, lab, with_password):
    Browser(client, None)
    fail(client, app, "bob")
    assert attempt(client, "bob", "wrong password") == 429
    assert attempt(client, "alice", PASSWORD) == 302


def test_nobody_can_lock_a_chosen_user_out_from_another_address(client, app, lab, with_password):
    Browser(client, None)
    fail(client, app, "alice", addr="203.0.113.9")
    assert attempt(client, "alice", PASSWORD, addr="203.0.113.9") == 429
    assert attempt(client, "alice", PASSWORD, addr="198.51.100.7") == 302


def test_an_address_that_tries_many_accounts_is_throttled(client, app, lab, with_password):
    Browser(client, None)
    for i in range(app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"]):
        assert attempt(client, f"user{i}", "wrong password", addr="203.0.113.9") == 401
    assert attempt(client, "alice", PASSWORD, addr="203.0.113.9") == 429
    assert attempt(client, "alice", PASSWORD, addr="198.51.100.7") == 302


def test_forwarded_addresses_count_only_behind_a_trusted_proxy(workspace, lab, with_password):
    untrusted = create_app({"TESTING": True, "VESTIGE": workspace.config}).test_client()
    Browser(untrusted, None)
    fail(untrusted, untrusted.application, "alice", addr="127.0.0.1", forwarded="203.0.113.9")
    # Without [web] trusted_proxies, the header is the client's word: the failures count against the proxy's address.
    assert attempt(untrusted, "alice", PASSWORD, addr="127.0.0.1", forwarded="198.51.100.7") == 429

    cfg = workspace.config
    trusting = dataclasses.replace(cfg, web=dataclasses.replace(cfg.web, trusted_proxies=1))
    proxied = create_app({"TESTING": True, "VESTIGE": trusting}).test_client()
    Browser(proxied, None)
    fail(proxied, proxied.application, "alice", addr="127.0.0.1", forwarded="203.0.113.9")
    assert attempt(proxied, "alice", PASSWORD, addr="127.0.0.1", forwarded="203.0.113.9") == 429
    assert attempt(proxied, "alice", PASSWORD, addr="127.0.0.1", forwarded="198.51.100.7") == 302
