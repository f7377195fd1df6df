"""Helpers of the registration, deep linking and admin console tests: the browser's side of each."""

from __future__ import annotations

import html
import re
from typing import Any

import requests

from tool.sandbox.deeplink import DeepLinking
from tool.sandbox.dynreg import DynamicRegistrations
from tests.e2e.conftest import ADMIN_PASSWORD, LaunchResult, Stack, follow_check, form_of, no_cookies

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def dynreg_of(stack: Stack) -> DynamicRegistrations:
    """The sandbox's Dynamic Registration service."""
    return stack.sandbox.server.app.extensions["sandbox_dynreg"]  # type: ignore[attr-defined]


def deeplink_of(stack: Stack) -> DeepLinking:
    """The sandbox's Deep Linking service."""
    return stack.sandbox.server.app.extensions["sandbox_deeplink"]  # type: ignore[attr-defined]


def paste_registration_url(stack: Stack, client: requests.Session | None = None) -> tuple[str, requests.Response]:
    """The sandbox admin pastes Tally's registration URL; the browser opens the iframe's page."""
    client = client or no_cookies()
    page = client.post(stack.platform.config.base_url + "/admin/tools/register",
                       data={"tool_url": stack.tool_url + "/lti/register"})
    assert page.status_code == 200, page.text[:500]
    src = re.search(r'<iframe id="registration-frame"[^>]*src="([^"]+)"', page.text)
    assert src, page.text[:800]
    start_url = html.unescape(src.group(1))
    return start_url, client.get(start_url)


def admin_client(stack: Stack, password: str = ADMIN_PASSWORD) -> requests.Session:
    """A first-party browser signed in to the console with the local admin password."""
    client = requests.Session()
    form = client.get(stack.tool_url + "/admin/login").text
    r = client.post(stack.tool_url + "/admin/login", data={"password": password, "csrf": csrf_of(form)},
                    allow_redirects=False)
    assert r.status_code == 303, r.text[:500]
    return client


def csrf_of(page: str) -> str:
    """The CSRF token of the console's forms."""
    m = CSRF.search(page)
    assert m, page[:500]
    return m.group(1)


def set_deployment(stack: Stack, client: requests.Session, deployment_pk: int, action: str) -> requests.Response:
    """Press Activate/Disable on the console (local admin)."""
    console = client.get(stack.tool_url + "/admin")
    return client.post(stack.tool_url + f"/admin/deployments/{deployment_pk}",
                       data={"action": action, "csrf": csrf_of(console.text)}, allow_redirects=False)


def deep_link_launch(stack: Stack, user_id: str | None = None, client: requests.Session | None = None) -> LaunchResult:
    """A Deep Linking launch: login initiation → platform auth → form POST to the tool."""
    client = client or no_cookies()
    params = deeplink_of(stack).login_params(user_id or stack.platform.teacher.id)
    r = stack.login("", client=client, params=params)
    assert r.status_code == 302, r.text[:500]
    auth = client.get(r.headers["Location"], allow_redirects=False)
    assert auth.status_code == 200, auth.text[:500]
    action, fields = form_of(auth.text)
    return LaunchResult(follow_check(client, stack.tool_url, client.post(action, data=fields, allow_redirects=False)))


def hidden(page: str, name: str) -> str:
    """The value of a hidden input on a page."""
    m = re.search(r'<input type="hidden" name="%s" value="([^"]*)"' % re.escape(name), page)
    assert m, page[:800]
    return html.unescape(m.group(1))


def extension(stack: Stack, name: str) -> Any:
    """An extension of the sandbox app."""
    return stack.sandbox.server.app.extensions[name]  # type: ignore[attr-defined]
