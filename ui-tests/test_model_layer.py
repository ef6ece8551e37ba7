"""The lab's one model layer in Chromium: at each poll of the shared poller the lab asks the
server once for my jobs and once for the deployments, however many views show them (the Jobs
and Getting started sections, the Deployments section and its deploy form)."""
from __future__ import annotations

import time
from urllib.parse import urlparse

from conftest import hub_login, open_lab, open_mlops_sidebar
from playwright.sync_api import expect

# a data scientist (hub administrators' work gets no control-plane token)
USER, PASSWORD = "ines7", "ines7-first-login-pw"
expect.set_options(timeout=30_000)
LISTS = ("jobs", "deployments", "sweeps", "pipelines", "projects", "experiments", "models")


def _route(url: str) -> str:
    """The server extension's route of a lab request (`jobs`, `notifications`), or ''."""
    path = urlparse(url).path
    return path.split("/mlops/api/", 1)[1] if "/mlops/api/" in path else ""


def _is_poll(request) -> bool:
    # every poll after the first asks for the notifications since the last one seen
    return _route(request.url) == "notifications" and "since=" in request.url


def test_each_poll_asks_once_for_each_list(page, platform):
    platform.add_user(USER, PASSWORD)
    sent: list[tuple[float, str]] = []
    page.on("request", lambda r: sent.append(
        (time.monotonic(), "poll" if _is_poll(r) else _route(r.url))))
    hub_login(page, platform, USER, PASSWORD)
    open_lab(page, platform, USER)
    sidebar = open_mlops_sidebar(page)
    # Given every view that lists jobs or deployments is on the page (a new person still has
    # the Getting started steps, which look for a job of theirs)
    expect(sidebar.get_by_role("list", name="My jobs")).to_be_attached()
    expect(sidebar.get_by_role("list", name="Deployments")).to_be_attached()
    expect(sidebar.get_by_test_id("getting-started-job")).to_be_attached()
    expect(sidebar.get_by_label("registered model")).to_be_attached()
    # When the poller ticks four times
    for _ in range(4):
        page.wait_for_event("request", predicate=_is_poll, timeout=60_000)
    polls = [t for t, route in sent if route == "poll"][-4:]

    # Then each of the two middle ticks (whole windows on both sides) asked for each list once:
    # a list request belongs to the tick it was sent nearest to (ticks are seconds apart, the
    # requests of one tick milliseconds)
    def at_tick(i: int) -> dict[str, int]:
        counts = dict.fromkeys(LISTS, 0)
        for t, route in sent:
            if route in counts and min(polls, key=lambda p: abs(p - t)) == polls[i]:
                counts[route] += 1
        return counts

    for i in (1, 2):
        counts = at_tick(i)
        assert counts["jobs"] == 1 and counts["deployments"] == 1, (i, counts)
        assert all(n <= 1 for n in counts.values()), (i, counts)
