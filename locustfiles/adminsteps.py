"""The original flow's Django admin steps (1-3 of workload.OriginalFlowUser, whose docstring describes
them), as a mixin of its user class, and the failure message of a bad status. Redirects are never
followed by the client: each one is a request of its own under a readable name, so Locust counts
every HTTP exchange the server (and k6) counts."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import inflight
from benchcontract import ADMIN_INDEX_PATH, ADMIN_LOGIN_PATH

# Locust-only names, built from benchcontract's paths (the module docstring spells them out).
LOGIN_POST_PATH = f"{ADMIN_LOGIN_PATH}?next={ADMIN_INDEX_PATH}"
LOGGED_IN_LOGIN_NAME = f"{ADMIN_LOGIN_PATH} (logged in)"  # step 3's own stats row
AFTER_LOGIN_NAME = f"{ADMIN_INDEX_PATH} (login redirect)"  # step 2's followed redirect
LOGGED_IN_INDEX_NAME = f"{ADMIN_INDEX_PATH} (logged-in redirect)"  # step 3's followed redirect
LOGIN_FORM_MARKER = b'id="login-form"'  # Django admin's login template
ADMIN_INDEX_MARKER = b'id="user-tools"'  # only rendered for a logged-in staff user


def status_failure(resp, expected=200) -> str:
    code = resp.status_code
    if not code:
        err = getattr(resp, "error", None)
        if inflight.is_timeout(err):
            msg = inflight.timeout_reason(inflight.configured_timeout)
        else:
            msg = f"no response: {err!r}" if err is not None else "no response"
    else:
        msg = f"HTTP {code}, expected {expected}"
    resp.failure(msg)
    return msg


def location_of(resp) -> str:
    """The Location header of a response ("" without one)."""
    headers = resp.headers
    return (headers.get("location") or "") if headers else ""


class AdminSteps:
    """Steps 1-3: self.client is a FastHttpSession with a checks.FastCookieJar; self._login_body,
    self._referer and self._csrftoken are set by the user class."""

    def get_login_form(self) -> str | None:
        with self.client.get(ADMIN_LOGIN_PATH, name=ADMIN_LOGIN_PATH, catch_response=True) as resp:
            if resp.status_code != 200:
                return status_failure(resp)
            self._csrftoken = self.client.cookiejar.get("csrftoken")
            if not self._csrftoken:
                msg = "no csrftoken cookie"
                resp.failure(msg)
                return msg
        return None

    def post_login(self) -> str | None:
        """Step 2: the POST must answer 302 to /admin/ with a sessionid cookie; then the redirect is
        followed as a request of its own (AFTER_LOGIN_NAME): the logged-in admin index."""
        token = self._csrftoken or ""
        with self.client.post(
            LOGIN_POST_PATH,
            name=ADMIN_LOGIN_PATH,
            data=(self._login_body + quote(token)).encode(),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-CSRFToken": token,
                "Referer": self._referer,
            },
            allow_redirects=False,
            catch_response=True,
        ) as resp:
            code = resp.status_code
            location = location_of(resp)
            if code == 403:
                msg = "HTTP 403: CSRF check failed" if not token else "HTTP 403 (CSRF rejected?)"
            elif code == 200 and LOGIN_FORM_MARKER in (resp.content or b""):
                msg = "login failed: the login form came back (wrong username or password?)"
            elif code != 302:
                return status_failure(resp, 302)
            elif urlsplit(location).path != ADMIN_INDEX_PATH:
                msg = f"login failed: redirected to {location!r}, expected {ADMIN_INDEX_PATH}"
            elif self.client.cookiejar.get("sessionid") is None:
                msg = "login failed: no sessionid cookie"
            else:
                msg = None
            if msg is not None:
                resp.failure(msg)
                return msg
        return self.get_admin_index(location, AFTER_LOGIN_NAME, "login failed")

    def get_login_logged_in(self) -> str | None:
        """Step 3: logged in, Django answers the login page with a 302 to /admin/; followed as a request
        of its own (LOGGED_IN_INDEX_NAME)."""
        with self.client.get(ADMIN_LOGIN_PATH, name=LOGGED_IN_LOGIN_NAME, allow_redirects=False,
                             catch_response=True) as resp:
            code = resp.status_code
            location = location_of(resp)
            if code == 200 and LOGIN_FORM_MARKER in (resp.content or b""):
                msg = "not logged in: got the login form"
            elif code != 302:
                return status_failure(resp, 302)
            elif urlsplit(location).path != ADMIN_INDEX_PATH:
                msg = f"redirected to {location!r}, expected {ADMIN_INDEX_PATH}"
            else:
                msg = None
            if msg is not None:
                resp.failure(msg)
                return msg
        return self.get_admin_index(location, LOGGED_IN_INDEX_NAME, "not logged in")

    def get_admin_index(self, location: str, name: str, what: str) -> str | None:
        """A followed redirect to /admin/: 200 and the logged-in admin index, not the login form."""
        with self.client.get(location, name=name, allow_redirects=False, catch_response=True) as resp:
            if resp.status_code != 200:
                return status_failure(resp)
            body = resp.content or b""
            if LOGIN_FORM_MARKER in body:
                msg = f"{what}: {ADMIN_INDEX_PATH} showed the login form"
            elif ADMIN_INDEX_MARKER not in body:
                msg = f"{what}: {ADMIN_INDEX_PATH} is not the logged-in admin index"
            else:
                return None
            resp.failure(msg)
            return msg
