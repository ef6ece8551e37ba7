"""The Platform section on a server started with the default CPU profile, in Chromium: holding
no GPU is what the profile asked for, so the GPU check says so in neutral words and a hollow
dot, not the error colour kept for a GPU that was asked for and cannot be seen. Screenshots in
the light and dark themes."""
from __future__ import annotations

from conftest import (ARTIFACTS, hub_login, open_lab, open_mlops_sidebar, open_section,
                      use_theme)
from playwright.sync_api import expect

USER, PASSWORD = "cora", "cora-cpu-profile-pw"


def test_a_cpu_profile_server_shows_no_gpu_as_normal(page, platform):
    platform.add_user(USER, PASSWORD)
    hub_login(page, platform, USER, PASSWORD)
    open_lab(page, platform, USER)  # the spawn page's default: the CPU profile
    sidebar = open_mlops_sidebar(page)
    open_section(sidebar, "Platform")
    gpus = sidebar.get_by_test_id("status-gpus")
    expect(gpus).to_contain_text("CPU profile: no GPU requested", timeout=30_000)
    expect(gpus).to_have_attribute("data-health", "none")
    dot = gpus.locator(".jp-mlops-dot")
    expect(dot).to_have_class("jp-mlops-dot jp-mlops-none")
    # the profile's name is one hover away
    expect(gpus.locator(".jp-mlops-value")).to_have_attribute("title", "profile cpu")
    for theme in ("Light", "Dark"):
        use_theme(page, theme)
        colours = dot.evaluate(
            """d => {
                const bad = document.createElement('span');  // what a fault's dot looks like
                bad.className = 'jp-mlops-dot jp-mlops-bad';
                d.parentElement.appendChild(bad);
                const s = getComputedStyle(d);
                const red = getComputedStyle(bad).backgroundColor;
                bad.remove();
                return [s.backgroundColor, s.borderTopColor, red];
            }""")
        background, border, error = colours
        # no fill at all, a visible ring, and nothing of the error colour
        assert background == "rgba(0, 0, 0, 0)", (theme, colours)
        assert border not in ("rgba(0, 0, 0, 0)", error), (theme, colours)
        gpus.scroll_into_view_if_needed()
        sidebar.screenshot(path=str(ARTIFACTS / f"status-cpu-profile-{theme.lower()}.png"))
    use_theme(page, "Light")
