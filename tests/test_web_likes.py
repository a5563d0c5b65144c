""""More like this" over HTTP: the page a digest's link opens (GET shows, the button's POST
likes), the manage page's liked papers with their remove buttons, and the admin API's
list, add and remove, on a real SQLite store with the seed listing."""

from __future__ import annotations

import datetime as dt
import html
import re
from urllib.parse import urlsplit

import pytest

from paperwire import liked, urls
from paperwire.models import Listing, Paper
from paperwire.normalize import paper_id as make_paper_id
from paperwire.normalize import shown_title

from .test_web import ADMIN, BASE, Site, _confirm, site  # noqa: F401  (site is a fixture)

AUTH = {"Authorization": f"Bearer {ADMIN}"}


def _papers(site: Site, count: int = 3) -> list[Paper]:
    return [s.paper for s in site.store.papers()[:count]]


def _like_path(reader, paper_id: str) -> str:
    return urlsplit(urls.more_like(BASE, reader, paper_id)).path


def _csrf(page_text: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page_text).group(1)


def _like(site: Site, reader, paper_id: str):
    """The button's POST, with the form token of the page this browser was given."""
    page = site.client.get(f"/manage/{reader.token}")
    return site.client.post(_like_path(reader, paper_id), data={"csrf_token": _csrf(page.text)})


def _liked(site: Site, email: str = "ada@example.org") -> tuple[str, ...]:
    return liked.liked_ids(site.store.subscriber(email))


# -- the page a digest's "More like this" link opens ---------------------------------------------


def test_the_link_shows_the_paper_and_a_button_and_changes_nothing(site: Site) -> None:
    reader = site.reader()
    paper = _papers(site)[0]
    before = site.store.subscriber(reader.email)
    page = site.client.get(_like_path(reader, paper.id))
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert html.escape(paper.title, quote=False) in page.text
    assert html.escape(paper.abstract[:80], quote=False) in page.text
    assert f'<form method="post" action="{urls.more_like(BASE, reader, paper.id)}">' in page.text
    assert "Add to my liked papers" in page.text and f'href="{BASE}/manage/{reader.token}#liked"' in page.text
    for _ in range(3):  # mail scanners open links, some more than once
        assert site.client.get(_like_path(reader, paper.id)).status_code == 200
        assert site.client.head(_like_path(reader, paper.id)).status_code == 200
    assert site.store.subscriber(reader.email) == before


def test_the_button_likes_the_paper_once_and_confirms(site: Site) -> None:
    reader = site.reader("ada@example.org", "Mine = LLM")
    first, second = _papers(site, 2)
    done = _like(site, reader, first.id)
    assert done.status_code == 200 and "Added to your liked papers" in done.text
    assert f'href="{BASE}/manage/{reader.token}#liked"' in done.text and done.headers["cache-control"] == "no-store"
    stored = site.store.subscriber(reader.email)
    assert [(t.name, t.query) for t in stored.topics] == [("Mine", "LLM"), ("Liked", f"like:{first.id}")]
    again = _like(site, reader, first.id)
    assert again.status_code == 200 and _liked(site) == (first.id,)  # liked twice: one entry
    assert "You like this paper" in again.text and "Added" not in again.text
    assert "You like this paper" in site.client.get(_like_path(reader, first.id)).text
    _like(site, reader, second.id)
    assert _liked(site) == (second.id, first.id)  # newest first
    assert site.store.subscriber(reader.email).topics[0] == stored.topics[0]


def test_the_post_needs_the_form_token(site: Site) -> None:
    reader = site.reader()
    path = _like_path(reader, _papers(site)[0].id)
    assert site.client.post(path).status_code == 403
    assert site.client.post(path, data={"csrf_token": "forged"}).status_code == 403
    token = _csrf(site.client.get(path).text)
    site.client.cookies.clear()
    assert site.client.post(path, data={"csrf_token": token}).status_code == 403
    assert _liked(site) == ()


def test_unknown_links_and_papers_are_the_usual_404_pages(site: Site) -> None:
    reader = site.reader()
    paper = _papers(site)[0]
    unknown_reader = site.client.get(f"/like/not-a-token/{paper.id}")
    assert unknown_reader.status_code == 404 and "Link not valid" in unknown_reader.text
    unknown_paper = site.client.get(f"/like/{reader.token}/t-0000000000000000")
    assert unknown_paper.status_code == 404 and "No such paper" in unknown_paper.text
    token = _csrf(site.client.get(f"/manage/{reader.token}").text)
    assert site.client.post(f"/like/{reader.token}/t-0000000000000000", data={"csrf_token": token}).status_code == 404
    assert site.client.post(f"/like/not-a-token/{paper.id}", data={"csrf_token": token}).status_code == 404
    assert _liked(site) == ()


def test_old_style_ids_trailing_slashes_and_rekeyed_papers(site: Site) -> None:
    reader = site.reader()
    old = Paper(id="hep-th/9901001", arxiv_id="hep-th/9901001", title="Old style id", abstract="x")
    title = "A paper first seen without its arXiv id"
    first = Paper(id=make_paper_id(None, title), title=title, abstract="First.")
    site.store.save_listings([Listing("daily-papers", dt.date(2024, 3, 12), [old, first])])
    link = urls.more_like(BASE, reader, old.id)
    assert link == f"{BASE}/like/{reader.token}/hep-th%2F9901001"
    assert "Old style id" in site.client.get(urlsplit(link).path).text
    assert _like(site, reader, old.id).status_code == 200 and _liked(site) == (old.id,)
    slash = site.client.get(_like_path(reader, old.id) + "/", follow_redirects=False)
    assert slash.status_code == 307 and slash.headers["location"] == f"{BASE}/like/{reader.token}/hep-th/9901001"
    assert "Old style id" in site.client.get(urlsplit(slash.headers["location"]).path).text
    site.store.save_listings([Listing("arxiv", dt.date(2024, 3, 13), [
        Paper(id="2403.99999", arxiv_id="2403.99999", title=title, abstract="First.")])])
    moved = site.client.get(_like_path(reader, first.id), follow_redirects=False)
    assert moved.status_code == 307 and moved.headers["location"] == urls.more_like(BASE, reader, "2403.99999")


def test_a_versioned_arxiv_id_leads_to_the_papers_like_page_as_the_api_takes_it(site: Site) -> None:
    reader = site.reader()
    paper = Paper(id="2501.00005", arxiv_id="2501.00005", title="An arXiv paper", abstract="x")
    site.store.save_listings([Listing("arxiv", dt.date(2024, 3, 12), [paper])])
    versioned = f"/like/{reader.token}/2501.00005v2"
    moved = site.client.get(versioned, follow_redirects=False)
    assert moved.status_code == 307 and moved.headers["location"] == urls.more_like(BASE, reader, paper.id)
    assert "An arXiv paper" in site.client.get(versioned).text
    token = _csrf(site.client.get(f"/manage/{reader.token}").text)
    liked_now = site.client.post(versioned, data={"csrf_token": token})  # the redirect keeps the POST and its form
    assert liked_now.status_code == 200 and _liked(site) == (paper.id,)
    assert site.client.get(f"/like/{reader.token}/2501.00006v2").status_code == 404


def test_readers_of_any_status_can_like_as_they_can_manage(site: Site) -> None:
    paper = _papers(site)[0]
    for status in ("unsubscribed", "paused", "pending"):
        reader = site.reader(f"{status}@example.org", status=status)
        assert _like(site, reader, paper.id).status_code == 200
        assert _liked(site, reader.email) == (paper.id,) and site.store.subscriber(reader.email).status == status


def test_a_topic_of_the_readers_own_named_liked_is_left_alone(site: Site) -> None:
    reader = site.reader("ada@example.org", "Liked = diffusion")
    refused = _like(site, reader, _papers(site)[0].id)
    assert refused.status_code == 409 and "rename it on the manage page" in refused.text
    assert [(t.name, t.query) for t in site.store.subscriber(reader.email).topics] == [("Liked", "diffusion")]


@pytest.mark.parametrize("arxiv", [True, False])
def test_a_full_list_forgets_the_oldest(site: Site, arxiv: bool) -> None:
    """50 papers with arXiv ids; fewer without (the list is a topic query of at most 1,000 characters)."""
    reader = site.reader()
    papers = [Paper(id=f"2403.{n:05d}", arxiv_id=f"2403.{n:05d}", title=f"Paper {n}", abstract="x") if arxiv
              else Paper(id=make_paper_id(None, f"Paper {n}"), title=f"Paper {n}", abstract="x") for n in range(51)]
    site.store.save_listings([Listing("arxiv", dt.date(2024, 3, 12), papers)])
    for paper in papers[:50]:
        site.store.rewrite_own_topic(reader.id, liked.NAME, liked.SLUG,
                                     liked.rewrite(lambda old, p=paper.id: liked.with_like(old, p)))
    full = _liked(site)
    assert len(full) == (50 if arxiv else 37) and full[0] == papers[49].id
    assert "as many as your list holds" in site.client.get(_like_path(reader, papers[50].id)).text
    _like(site, reader, papers[50].id)
    assert _liked(site) == (papers[50].id, *full[:-1])


# -- the manage page ---------------------------------------------------------------------------------


def test_manage_lists_liked_papers_and_removes_them(site: Site) -> None:
    reader = site.reader("ada@example.org", "Mine = LLM")
    first, second = _papers(site, 2)
    empty = site.client.get(f"/manage/{reader.token}")
    assert 'id="liked"' in empty.text and "None yet" in empty.text
    _like(site, reader, first.id)
    _like(site, reader, second.id)
    page = site.client.get(f"/manage/{reader.token}")
    shown = re.findall(r'<li><a href="([^"]+)">([^<]+)</a> <button type="submit" name="remove" value="([^"]+)"',
                       page.text)
    assert [(href, html.unescape(title), value) for href, title, value in shown] == [
        (urls.paper(BASE, p.id), shown_title(p.title), p.id) for p in (second, first)]
    assert f'action="{BASE}/manage/{reader.token}/liked"' in page.text
    # The topics box is for the topics a reader writes: the list has its own buttons.
    assert "like:" not in re.search(r'<textarea[^>]*name="topics"[^>]*>([^<]*)</textarea>', page.text).group(1)
    token = _csrf(page.text)
    assert site.client.post(f"/manage/{reader.token}/liked", data={"remove": first.id}).status_code == 403
    removed = site.client.post(f"/manage/{reader.token}/liked", data={"csrf_token": token, "remove": first.id},
                               follow_redirects=False)
    assert removed.status_code == 303 and removed.headers["location"].endswith("?done=unliked#liked")
    assert _liked(site) == (second.id,)
    assert "Removed from your liked papers." in site.client.get(removed.headers["location"]).text
    site.client.post(f"/manage/{reader.token}/liked", data={"csrf_token": token, "remove": second.id})
    assert [(t.name, t.query) for t in site.store.subscriber(reader.email).topics] == [("Mine", "LLM")]
    nothing = site.client.post(f"/manage/{reader.token}/liked", data={"csrf_token": token, "remove": "2403.00000"},
                               follow_redirects=False)
    assert nothing.status_code == 303 and "done" not in nothing.headers["location"]


def test_saving_the_manage_form_keeps_the_liked_papers(site: Site) -> None:
    reader = site.reader("ada@example.org", "Mine = LLM")
    paper = _papers(site)[0]
    _like(site, reader, paper.id)
    url = f"/manage/{reader.token}"
    token = _csrf(site.client.get(url).text)
    form = {"csrf_token": token, "topics": "RAG", "cadence": "daily", "hour": "8", "timezone": "UTC",
            "max_papers": "15"}
    assert site.client.post(url, data=form, follow_redirects=False).status_code == 303
    stored = site.store.subscriber(reader.email)
    assert [(t.name, t.query) for t in stored.topics] == [("RAG", "RAG"), ("Liked", f"like:{paper.id}")]
    clash = site.client.post(url, data={**form, "topics": "RAG\nliked = diffusion"})
    assert clash.status_code == 400 and "is the name of your liked papers" in html.unescape(clash.text)
    assert site.store.subscriber(reader.email).topics == stored.topics


def test_confirming_a_new_subscription_form_keeps_the_liked_papers(site: Site) -> None:
    """A returning reader's subscribe form (kept aside until confirmed) never shows the list,
    so confirming it replaces their topics and keeps their liked papers."""
    reader = site.reader("ada@example.org", "depth", status="unsubscribed")
    paper = _papers(site)[0]
    _like(site, reader, paper.id)
    site.subscribe(topics="Mine = diffusion")
    assert _confirm(site, site.confirm_link()).status_code == 303
    stored = site.store.subscriber(reader.email)
    assert stored.status == "active"
    assert [(t.name, t.query) for t in stored.topics] == [("Mine", "diffusion"), ("Liked", f"like:{paper.id}")]


def test_export_and_delete_include_the_liked_papers(site: Site) -> None:
    reader = site.reader()
    paper = _papers(site)[0]
    _like(site, reader, paper.id)
    data = site.client.get(f"/manage/{reader.token}/export").json()
    assert {"name": "Liked", "query": f"like:{paper.id}", "public": False} in data["topics"]
    assert site.store.delete_subscriber(reader.email)
    assert site.client.get(_like_path(reader, paper.id)).status_code == 404


# -- the API -------------------------------------------------------------------------------------------


def test_api_lists_adds_and_removes_liked_papers(site: Site) -> None:
    client = site.client
    reader = site.reader()
    first = _papers(site)[0]
    second = Paper(id="2403.99999", arxiv_id="2403.99999", title="An arXiv paper", abstract="x")
    base = "/api/subscribers/ada@example.org/liked"
    assert client.get(base).status_code == 401
    assert client.put(f"{base}/{first.id}").status_code == 401 and _liked(site) == ()
    assert client.get(base, headers=AUTH).json() == []
    added = client.put(f"{base}/{first.id}", headers=AUTH)
    assert added.status_code == 201
    assert added.json() == [{"id": first.id, "title": first.title, "url": urls.paper(BASE, first.id)}]
    assert client.put(f"{base}/{first.id}", headers=AUTH).status_code == 200  # liked already: one entry
    # An arXiv id with its version (or an arXiv URL) names the stored paper.
    site.store.save_listings([Listing("arxiv", dt.date(2024, 3, 12), [second])])
    versioned = client.put(f"{base}/{second.id}v3", headers=AUTH)
    assert versioned.status_code == 201 and [p["id"] for p in versioned.json()] == [second.id, first.id]
    assert [p["id"] for p in client.get(base, headers=AUTH).json()] == [second.id, first.id]
    assert client.delete(f"{base}/{first.id}", headers=AUTH).status_code == 204
    assert client.delete(f"{base}/{first.id}", headers=AUTH).status_code == 404
    assert _liked(site) == (second.id,)
    missing = client.put(f"{base}/t-0000000000000000", headers=AUTH)
    assert missing.status_code == 404 and missing.json() == {"detail": "no such paper"}
    assert client.get("/api/subscribers/nobody@example.org/liked", headers=AUTH).status_code == 404
    assert client.get("/api/subscribers/not-an-email/liked", headers=AUTH).status_code == 422
    assert reader.token not in client.get(base, headers=AUTH).text


def test_setting_topics_by_api_or_command_keeps_the_liked_papers(site: Site) -> None:
    """``PUT /api/subscribers/{email}`` with topics, like ``paperwire subscribe --topic``
    (both through ``build_subscriber``), replaces the reader's topics but not their liked
    papers, which have their own API; naming a topic "Liked" there still replaces them."""
    from paperwire.subscribers import build_subscriber, make_topic

    reader = site.reader()
    paper = _papers(site)[0]
    assert site.client.put(f"/api/subscribers/ada@example.org/liked/{paper.id}", headers=AUTH).status_code == 201
    answer = site.client.put("/api/subscribers/ada@example.org", headers=AUTH,
                             json={"topics": [{"name": "Mine", "query": "speculative decoding"}]})
    assert answer.status_code == 200
    assert [t["name"] for t in answer.json()["topics"]] == ["Mine", liked.NAME] and _liked(site) == (paper.id,)
    stored = site.store.subscriber(reader.email)
    again = build_subscriber(reader.email, topics=[make_topic("Other", "diffusion")], base=stored)
    assert [t.name for t in again.topics] == ["Other", liked.NAME]
    replaced = build_subscriber(reader.email, topics=[make_topic(liked.NAME, "like:2401.00001")], base=stored)
    assert [(t.name, t.query) for t in replaced.topics] == [(liked.NAME, "like:2401.00001")]
    public = make_topic(liked.NAME, "diffusion", public=True)  # following a public topic named Liked: no clash
    assert [t.name for t in build_subscriber(reader.email, topics=[public], base=stored).topics] == [liked.NAME]


def test_api_refuses_to_rewrite_a_readers_own_topic_named_liked(site: Site) -> None:
    site.reader("ada@example.org", "Liked = diffusion")
    answer = site.client.put(f"/api/subscribers/ada@example.org/liked/{_papers(site)[0].id}", headers=AUTH)
    assert answer.status_code == 409 and "not a list of liked papers" in answer.json()["detail"]


@pytest.mark.parametrize("path", ["/like/{token}/{paper}", "/manage/{token}"])
def test_pages_with_the_token_are_never_cached(site: Site, path: str) -> None:
    reader = site.reader()
    answer = site.client.get(path.format(token=reader.token, paper=_papers(site)[0].id))
    assert answer.headers["cache-control"] == "no-store" and answer.headers["referrer-policy"] == "no-referrer"
