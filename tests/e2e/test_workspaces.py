"""Several workspaces through Slack's OAuth install flow, against the Slack stand-in's
`oauth.v2.access`: the install pages, a token per workspace kept in our database, each
workspace's calls, cards and summaries on its own token, its history apart from the
other's, and an uninstall that deletes its tokens and nothing of the other's."""

from __future__ import annotations

import html
import json
import re
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest

from standins.retell import RetellStandIn
from standins.slack import SlackStandIn, signed_headers
from tests.conftest import SIGNING_SECRET, Server
from tests.support.db import db_rows as rows
from tests.support.delivery import webhook
from tests.support.waiting import eventually

STATE_SECRET = "state-secret-for-tests-0123456789abcdef"
ONE, TWO = ("T0ONE", "C1ONE", "U1ANN"), ("T0TWO", "C2TWO", "U2BEN")


@pytest.fixture
async def oauth_server(make_server: Callable[..., Awaitable[Server]],
                       slack: SlackStandIn) -> Server:
    return await make_server(SLACK_BOT_TOKEN=None, SLACK_CLIENT_ID=slack.client_id,
                             SLACK_CLIENT_SECRET=slack.client_secret,
                             SLACK_STATE_SECRET=STATE_SECRET,
                             CALLBOT_ADMINS=f"{ONE[2]},{TWO[2]}")


async def start_install(browser: aiohttp.ClientSession, server: Server) -> dict[str, list[str]]:
    """The "Add to Slack" page: the authorize URL's query (client id, scopes, state). Its
    cookie (Secure: a browser sends it back over https only) is kept by hand here."""
    async with browser.get(server.url + "/slack/install") as page:
        assert page.status == 200
        text = await page.text()
        cookie = page.cookies["slack-app-oauth-state"]
    assert cookie["secure"] and cookie["httponly"]
    browser.headers["Cookie"] = f"slack-app-oauth-state={cookie.value}"
    found = re.search(r'href="(https://slack\.com/oauth/v2/authorize\?[^"]+)"', text)
    assert found, text[:500]
    return parse_qs(urlsplit(html.unescape(found.group(1))).query)


async def install(server: Server, slack: SlackStandIn, team: str,
                  installer: str) -> tuple[int, str]:
    """A person in `team` installs the app: the install page, Slack's consent, the
    redirect back (in one browser, which keeps the flow's cookie)."""
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        query = await start_install(browser, server)
        code = slack.issue_code(team, installer=installer)
        async with browser.get(server.url + "/slack/oauth_redirect",
                               params={"code": code, "state": query["state"][0]}) as back:
            return back.status, await back.text()


async def slash(server: Server, who: tuple[str, str, str], command: str, text: str,
                response_url: str) -> tuple[int, Any]:
    team, channel, user = who
    form = {"token": "legacy", "team_id": team, "team_domain": team.lower(),
            "channel_id": channel, "channel_name": "calls", "user_id": user,
            "user_name": user.lower(), "command": command, "text": text,
            "api_app_id": "A0CALLBOT", "is_enterprise_install": "false",
            "response_url": response_url, "trigger_id": f"1.{uuid.uuid4().hex}"}
    body = urlencode(form).encode()
    return await server.post("/slack/events", body, signed_headers(body, SIGNING_SECRET))


async def event(server: Server, payload: dict[str, Any]) -> tuple[int, Any]:
    body = json.dumps(payload).encode()
    headers = signed_headers(body, SIGNING_SECRET)
    headers["Content-Type"] = "application/json"
    return await server.post("/slack/events", body, headers)


async def place(server: Server, slack: SlackStandIn, retell: RetellStandIn,
                who: tuple[str, str, str], number: str) -> str:
    before = set(retell.calls)
    status, _ = await slash(server, who, "/call", number, slack.response_url(who[1]))
    assert status == 200
    await eventually(lambda: len(set(retell.calls) - before) == 1)
    [call_id] = set(retell.calls) - before
    return call_id


def said(answer: Any) -> str:
    """What an answer to a slash command says: plain text, or its JSON (blocks)."""
    return answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)


def posts(slack: SlackStandIn, team: str, channel: str) -> list[dict[str, Any]]:
    return [c.args for c in slack.calls_by(team)
            if c.method == "chat.postMessage" and c.args.get("channel") == channel]


async def test_the_install_page_asks_for_the_manifests_scopes_with_a_fresh_state(
        oauth_server: Server, slack: SlackStandIn) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        first = await start_install(browser, oauth_server)
        second = await start_install(browser, oauth_server)
    assert first["client_id"] == [slack.client_id]
    assert {"commands", "chat:write", "users:read"} <= set(first["scope"][0].split(","))
    assert first["state"] != second["state"]
    # Only keyed hashes of the states are kept: none of them is the state itself.
    kept = {key for (key,) in rows(oauth_server, "SELECT state_key FROM oauth_states")}
    assert len(kept) == 2 and not kept & {first["state"][0], second["state"][0]}


async def test_two_workspaces_install_and_each_works_on_its_own_token(
        oauth_server: Server, slack: SlackStandIn, retell: RetellStandIn) -> None:
    for team, _, user in (ONE, TWO):
        status, page = await install(oauth_server, slack, team, user)
        assert status == 200, page[:500]
    assert [c.method for c in slack.calls if c.method == "oauth.v2.access"] == [
        "oauth.v2.access"] * 2
    assert sorted(t for (t,) in rows(oauth_server, "SELECT team_id FROM slack_installs")) == [
        "T0ONE", "T0TWO"]
    # The tokens are the workspaces' own, kept where Bolt finds them.
    for team, _, _ in (ONE, TWO):
        [(data,)] = rows(oauth_server, "SELECT data FROM slack_installs WHERE team_id = ?", team)
        assert json.loads(data)["bot_token"] == slack.workspace(team).token

    # A call from each: its card and, after the webhooks, its summary go out on the token
    # of the workspace it came from, in that workspace's channel.
    calls = {}
    for who, number in ((ONE, "+14155550123"), (TWO, "+14155550124")):
        calls[who[0]] = await place(oauth_server, slack, retell, who, number)
    for who in (ONE, TWO):
        call_id = calls[who[0]]
        await webhook(oauth_server, retell, call_id, "call_ended")
        await webhook(oauth_server, retell, call_id, "call_analyzed")
    await eventually(oauth_server.outbox_idle, timeout=10)
    for team, channel, _ in (ONE, TWO):
        sent = posts(slack, team, channel)
        assert len(sent) >= 2, sent  # the card, then the summary in its thread
        assert any(p.get("thread_ts") for p in sent)
        other = TWO if team == ONE[0] else ONE
        assert not posts(slack, team, other[1]), "a workspace's token wrote to the other's"
    assert rows(oauth_server, "SELECT team_id, count(*) FROM calls GROUP BY team_id "
                              "ORDER BY team_id") == [("T0ONE", 1), ("T0TWO", 1)]


async def test_a_state_works_once_and_a_forged_one_installs_nothing(
        oauth_server: Server, slack: SlackStandIn) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser:
        query = await start_install(browser, oauth_server)
        state = query["state"][0]
        code = slack.issue_code(ONE[0])
        async with browser.get(oauth_server.url + "/slack/oauth_redirect",
                               params={"code": code, "state": state}) as back:
            assert back.status == 200
        # The same state again (a replayed redirect), with a new code: refused.
        again = slack.issue_code(TWO[0])
        async with browser.get(oauth_server.url + "/slack/oauth_redirect",
                               params={"code": again, "state": state}) as replay:
            assert replay.status >= 400
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as stranger:
        async with stranger.get(oauth_server.url + "/slack/oauth_redirect",
                                params={"code": slack.issue_code(TWO[0]),
                                        "state": "made-up"}) as forged:
            assert forged.status >= 400
    assert [t for (t,) in rows(oauth_server, "SELECT team_id FROM slack_installs")] == ["T0ONE"]


async def test_an_uninstall_deletes_that_workspaces_tokens_only(
        oauth_server: Server, slack: SlackStandIn, retell: RetellStandIn) -> None:
    for team, _, user in (ONE, TWO):
        assert (await install(oauth_server, slack, team, user))[0] == 200
    old_token = slack.workspace(TWO[0]).token
    for payload in slack.revoke(TWO[0]):
        status, _ = await event(oauth_server, payload)
        assert status == 200
    # Deleted after the answer (Bolt acknowledges events first).
    await eventually(lambda: [t for (t,) in rows(
        oauth_server, "SELECT team_id FROM slack_installs")] == ["T0ONE"])
    # The uninstalled workspace can no longer place a call; the other one can.
    before = len(retell.calls)
    await slash(oauth_server, TWO, "/call", "+14155550124", slack.response_url("two"))
    await place(oauth_server, slack, retell, ONE, "+14155550123")
    assert len(retell.calls) == before + 1
    # Installed again: a new token, and it works.
    assert (await install(oauth_server, slack, TWO[0], TWO[2]))[0] == 200
    await place(oauth_server, slack, retell, TWO, "+14155550124")
    await eventually(lambda: bool(posts(slack, TWO[0], TWO[1])), timeout=10)
    [(data,)] = rows(oauth_server, "SELECT data FROM slack_installs WHERE team_id = ?", TWO[0])
    assert json.loads(data)["bot_token"] == slack.workspace(TWO[0]).token != old_token


async def test_each_workspace_sees_only_its_own_history(
        oauth_server: Server, slack: SlackStandIn, retell: RetellStandIn) -> None:
    for team, _, user in (ONE, TWO):
        assert (await install(oauth_server, slack, team, user))[0] == 200
    for who, count in ((ONE, 1), (TWO, 2)):
        for n in range(count):
            call_id = await place(oauth_server, slack, retell, who, f"+1415555012{n}")
            await webhook(oauth_server, retell, call_id, "call_ended")
            await webhook(oauth_server, retell, call_id, "call_analyzed")
    await eventually(oauth_server.outbox_idle, timeout=10)
    # /callstats: each workspace counts its own calls.
    for who, count in ((ONE, 1), (TWO, 2)):
        status, answer = await slash(oauth_server, who, "/callstats", "", "")
        assert status == 200
        assert answer["text"].startswith(f"{count} calls in the last 7 days"), answer["text"]
    # /callsearch: a word every summary has finds the workspace's own calls only.
    [(summary,)] = rows(oauth_server, "SELECT summary FROM calls WHERE team_id = ? LIMIT 1",
                        ONE[0])
    word = max(re.findall(r"[A-Za-z]{5,}", summary), key=len)
    for who, count in ((ONE, 1), (TWO, 2)):
        status, answer = await slash(oauth_server, who, "/callsearch", word, "")
        assert status == 200
        assert answer["text"].startswith(f"{count} call"), answer["text"]


async def test_each_workspace_has_its_own_do_not_call_list_and_audit_log(
        oauth_server: Server, slack: SlackStandIn, retell: RetellStandIn) -> None:
    for team, _, user in (ONE, TWO):
        assert (await install(oauth_server, slack, team, user))[0] == 200
    number = "+14155550177"
    status, answer = await slash(oauth_server, ONE, "/calldnc", f"add {number} asked", "")
    assert status == 200 and "0177" in said(answer)
    # Listed in ONE: refused there; TWO's list does not have it and its call goes out.
    before = len(retell.calls)
    status, answer = await slash(oauth_server, ONE, "/call", number, slack.response_url("r1"))
    assert status == 200
    await place(oauth_server, slack, retell, TWO, number)
    assert len(retell.calls) == before + 1
    for who, listed in ((ONE, 1), (TWO, 0)):
        [(count,)] = rows(oauth_server, "SELECT count(*) FROM dnc WHERE team_id = ?", who[0])
        assert count == listed
        status, answer = await slash(oauth_server, who, "/calldnc", "list", "")
        assert ("0177" in said(answer)) == bool(listed), said(answer)
        status, answer = await slash(oauth_server, who, "/calldnc", f"check {number}", "")
        assert ("0177" in said(answer)) and (
            "not on" in said(answer)) != bool(listed), said(answer)
    # Removing it in TWO (where it is not listed) leaves ONE's entry.
    await slash(oauth_server, TWO, "/calldnc", f"remove {number}", "")
    assert rows(oauth_server, "SELECT team_id FROM dnc") == [(ONE[0],)]
    # Each workspace's audit log holds its own rows only.
    await eventually(lambda: bool(rows(oauth_server, "SELECT 1 FROM audit WHERE team_id = ? "
                                                     "AND action = 'call'", TWO[0])))
    teams = {t for (t,) in rows(oauth_server, "SELECT DISTINCT team_id FROM audit")}
    assert teams == {ONE[0], TWO[0]}
    for who, other in ((ONE, TWO), (TWO, ONE)):
        status, answer = await slash(oauth_server, who, "/callaudit", "", "")
        text = said(answer)
        assert who[2] in text and other[2] not in text, text[:600]
