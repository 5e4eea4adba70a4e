"""Exercise 2: the student's pages, served by Apache (or nginx)."""

from grader.toolkit import note, processes, read_lines

from .support import apache_config, document_root, indexes_for, vhost_for

WEB_SERVERS = ("apache2", "httpd", "nginx")


def test_web_running(host):
    """A web server (Apache; nginx also accepted) runs."""
    found = [p for p in processes(host).values() if p.comm in WEB_SERVERS]
    assert found, "no web server (apache2, nginx) is running"


def _page(outside, host_name, path="/"):
    page = outside.http(path, host=host_name)
    assert page.ok, f"no answer on port 80 for http://{host_name}{path}: {page.text}"
    return page


def test_page_carries_token(lab, outside):
    """The site's page carries the student's word."""
    name = f"www.{lab.var('zone')}"
    page = _page(outside, name)
    assert page.status == 200, f"http://{name}/ answered {page.status} {page.reason}"
    token = lab.var("token")
    assert token in page.body, f"http://{name}/ does not carry your word {token!r}"


def test_listing_off(host, lab, outside):
    """Directory listing is off: /files/ is not listed, and Apache's configuration lists no
    folder of the site.

    /files/ from outside is no listing, and Apache's effective configuration for the site's
    folder has no Indexes (Options -Indexes, or mod_autoindex off).
    """
    name = f"www.{lab.var('zone')}"
    page = _page(outside, name, "/files/")
    listed = page.status == 200 and "Index of" in page.body
    assert not listed, (
        f"http://{name}/files/ lists the folder's files (Options Indexes is still on)"
    )
    config = apache_config(host)
    if config is None:
        note("Apache's configuration could not be read (no apache2ctl): the page alone decided")
        return
    root = document_root(config, vhost_for(config, name))
    htaccess = []
    for folder in (root, f"{root}/files"):
        found = read_lines(host, f"{folder}/.htaccess", "^[[:space:]]*Options")
        if found is not None:
            htaccess.append((folder, "\n".join(text for _, text in found.numbered)))
    indexes = indexes_for(config, name, "/files/", htaccess)
    if not indexes.on:
        return
    shown = {200: "shows a page, not the listing", 404: "is gone (404)"}.get(
        page.status or 0, f"answers {page.status} {page.reason}"
    )
    raise AssertionError(
        f"http://{name}/files/ {shown}, but listing is still on in Apache's configuration "
        f"({indexes.because}): the folder is hidden, not the listing turned off. Turn it off "
        f"for the site (Options -Indexes in <Directory {root}>)"
    )


def test_second_vhost(lab, outside):
    """A second virtual host answers for shop in the zone."""
    zone, token = lab.var("zone"), lab.var("token")
    shop = _page(outside, f"shop.{zone}")
    main = _page(outside, f"www.{zone}")
    assert shop.status == 200, f"http://shop.{zone}/ answered {shop.status} {shop.reason}"
    if shop.body == main.body:
        raise AssertionError(
            f"Host: shop.{zone} gets the main site's page: no virtual host has ServerName "
            f"shop.{zone} (check its ServerName, and that it is enabled)"
        )
    assert "shop" in shop.body.lower() and token in shop.body, (
        f"http://shop.{zone}/ does not say shop with your word {token!r}"
    )
