"""The project setting "members may change each other's work" on the hub's pages, through the
real proxy with browser-like sessions and xsrf tokens: its manager sets it on the project page,
an administrator on the admin page; a member's form post is refused."""
from __future__ import annotations

import re

API = "services/mlops/api"
PAGES = "services/mlops"
PASSWORD = "settings-page-1"
PROJECT = "loom"


def _xsrf(html: str) -> str:
    return re.search(r'<meta name="xsrf-token" content="([^"]+)"', html).group(1)


def _setting(platform, token) -> bool:
    return platform.api("GET", f"{API}/projects/{PROJECT}", token).json()[
        "members_change_others_work"]


def test_manager_and_administrator_set_it_on_the_pages(platform):
    manager = platform.add_user("lou", PASSWORD, groups=["mlops-pms"])
    member = platform.add_user("lia", PASSWORD)
    lou = platform.token("lou")
    r = platform.api("POST", f"{API}/projects", lou, json={"name": PROJECT, "members": ["lia"]})
    assert r.status_code in (201, 409), r.text
    page = f"{platform.url}/{PAGES}/projects/{PROJECT}"
    form = {"action": "settings", "description": "", "gpu_quota": "",
            "reference_dataset": "", "members_change_others_work": "on"}
    # a member's post is refused, nothing changes
    html = member.get(page).text
    member.post(page, data={**form, "_xsrf": _xsrf(html)})
    assert _setting(platform, lou) is False
    # the manager turns it on with the checkbox
    html = manager.get(page).text
    assert 'name="members_change_others_work"' in html
    r = manager.post(page, data={**form, "_xsrf": _xsrf(html)})
    assert r.status_code == 200, r.text[:300]
    assert _setting(platform, lou) is True
    # the administrator turns it off on the admin page (an unticked box is absent)
    admin = platform.login("admin", platform.admin_password)
    html = admin.get(f"{platform.url}/{PAGES}/admin").text
    assert re.search(rf'value="on" checked aria-label="Members of {PROJECT} may', html)
    r = admin.post(f"{platform.url}/{PAGES}/admin/project",
                   data={"project": PROJECT, "gpu_quota": "", "gpu_quota_max": "",
                         "groups": "", "_xsrf": _xsrf(html)})
    assert r.status_code == 200, r.text[:300]
    assert _setting(platform, lou) is False
