"""The hub's login page tells a new person how the first login works."""
import requests


def test_the_login_page_says_the_first_login_chooses_the_password(platform):
    page = requests.get(f"{platform.url}/hub/login", timeout=30)
    assert page.status_code == 200
    assert "password you type at your first login becomes your password" in page.text
    assert 'id="password_input"' in page.text  # the hub's own form is still there
