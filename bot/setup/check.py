"""`callbot check`: the set-up checked against the live services, one result per item.

Each check returns data (`CheckResult`: what was checked, whether it passed, what was found
and the fix), so `callbot check` prints them (`format_results`, `run_check`) and `serve`
runs the same ones in the background (bot/setup/monitor.py), logs a WARNING per problem and
shows them in /healthz.

Nothing here shows a token, a key or a whole phone number: details name settings, never
their values; numbers are masked, and what is printed is scrubbed once more.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TextIO
from urllib.parse import urlsplit

from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

from bot.config import Settings
from bot.input.phones import mask_phone
from bot.retell.client import Agent, CallerNumber, RetellClient, RetellError
from bot.runtime.logs import install_scrubbing, scrub
from bot.runtime.retry import retry_after_seconds
from bot.setup.scopes import wanted_scopes

# Result keys (stable: /healthz shows them).
SLACK_TOKEN = "slack_token"
SLACK_SCOPES = "slack_scopes"
# What manifest.no-history.yml leaves out (tests keep the two in step): without them the app
# still works, with no message triggers and no look-up for posts whose answer was lost.
HISTORY_SCOPES = frozenset({"channels:history", "groups:history", "im:history",
                            "mpim:history", "channels:join"})
SLACK_SIGNING_SECRET = "slack_signing_secret"
SLACK_SOCKET_MODE = "slack_socket_mode"
RETELL_KEY = "retell_key"
RETELL_FROM_NUMBER = "retell_from_number"
RETELL_AGENT = "retell_agent"
RETELL_WEBHOOK = "retell_webhook"  # one per agent: "retell_webhook:<agent id>"
NOTIFY_CHANNEL = "notify_channel"

# Slack errors worth asking again for; any other (invalid_auth, token_revoked, ...) stays
# until the setting is changed, which takes a restart.
TRANSIENT_SLACK_ERRORS = frozenset({
    "ratelimited", "internal_error", "fatal_error", "service_unavailable", "request_timeout",
})
SLACK_TIMEOUT = 10  # seconds for each Slack call of `callbot check`
MAX_DETAIL = 160  # a service's own words are cut to this
_ERROR_CODE = re.compile(r"[^a-z0-9_]")
_TOKEN_FIX = ("copy the Bot User OAuth Token (xoxb-...) from the app's OAuth & Permissions "
              "page into SLACK_BOT_TOKEN")
_REINSTALL_FIX = ("the token was revoked or the app uninstalled: reinstall the app to the "
                  "workspace and put its new Bot User OAuth Token in SLACK_BOT_TOKEN")


@dataclass(frozen=True)
class CheckResult:
    """One item of the set-up: `ok` False is a problem; `skipped` items (not set, simulated,
    or not checkable after an earlier failure) pass. `transient` failures (a service not
    answering) may pass when asked again."""

    key: str
    name: str
    ok: bool
    detail: str
    fix: str = ""
    skipped: bool = False
    transient: bool = False


def passed(name: str, key: str, detail: str) -> CheckResult:
    return CheckResult(key, name, True, detail)


def failed(name: str, key: str, detail: str, fix: str, *, transient: bool = False
           ) -> CheckResult:
    return CheckResult(key, name, False, detail, fix, transient=transient)


def skipped(name: str, key: str, detail: str) -> CheckResult:
    return CheckResult(key, name, True, detail, skipped=True)


def all_passed(results: Iterable[CheckResult]) -> bool:
    return all(r.ok for r in results)


# -- Slack ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlackAuth:
    """auth.test's answer: the response when Slack accepted the token, else its error code
    (`invalid_auth`, `http_503`, `unreachable (ClientConnectorError)`, ...)."""

    response: AsyncSlackResponse | None
    error: str | None = None
    transient: bool = False
    retry_after: float | None = None
    # What Slack says the token was granted (`x-oauth-scopes`), None when it did not say.
    scopes: frozenset[str] | None = None

    @property
    def ok(self) -> bool:
        return self.response is not None

    @property
    def state(self) -> str:
        """What /healthz shows for the token: `ok` or the error code."""
        return "ok" if self.ok else self.error or "unknown_error"


def slack_error_code(error: Any, status: int) -> str:
    """Slack's error code, short and plain (it is shown and logged), never anything else."""
    code = _ERROR_CODE.sub("", str(error or "").lower())[:64]
    return code or (f"http_{status}" if status else "unknown_error")


def _header(headers: Any, name: str) -> str | None:
    """A response header, whatever the case of its name (slack_sdk passes aiohttp's
    case-insensitive headers, or a plain dict)."""
    if not isinstance(headers, Mapping):
        return None
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if str(k).lower() == name), None)
    return str(value) if value is not None else None


def granted_scopes(headers: Any) -> frozenset[str] | None:
    listed = _header(headers, "x-oauth-scopes")
    if listed is None:
        return None
    return frozenset(s.strip() for s in listed.split(",") if s.strip())


def _slack_failure(exc: BaseException) -> tuple[str, bool, float | None]:
    """(error code, transient, Retry-After) of a failed Slack call."""
    if isinstance(exc, SlackApiError):
        status = int(getattr(exc.response, "status_code", 0) or 0)
        error = slack_error_code(exc.response.get("error"), status)
        transient = status >= 500 or status == 429 or error in TRANSIENT_SLACK_ERRORS
        return error, transient, retry_after_seconds(_header(exc.response.headers,
                                                             "retry-after"))
    return f"unreachable ({type(exc).__name__})", True, None  # refused, DNS, timeout


async def ask_slack_auth(client: AsyncWebClient) -> SlackAuth:
    """auth.test, as data: never raises for Slack's answers or an unreachable Slack."""
    try:
        result = await client.auth_test()
    except Exception as exc:  # Slack's refusal, or no answer (aiohttp's errors, timeouts)
        error, transient, retry_after = _slack_failure(exc)
        return SlackAuth(None, error, transient, retry_after)
    return SlackAuth(result, scopes=granted_scopes(result.headers))


def token_result(auth: SlackAuth) -> CheckResult:
    name, key = "Slack token", SLACK_TOKEN
    if auth.response is not None:
        data = auth.response
        if not data.get("bot_id"):
            return failed(name, key, "SLACK_BOT_TOKEN is not a bot token (auth.test shows no "
                          "bot)", _TOKEN_FIX)
        return passed(name, key, f"team {data.get('team') or '?'} ({data.get('team_id')}), "
                      f"bot user @{data.get('user') or '?'} ({data.get('user_id')})")
    if auth.transient:
        return failed(name, key, f"Slack did not answer auth.test ({auth.error})",
                      "check the network and SLACK_API_URL; if Slack is down, it is asked "
                      "again", transient=True)
    fix = _REINSTALL_FIX if auth.error in ("token_revoked", "account_inactive",
                                           "token_expired", "app_uninstalled") else _TOKEN_FIX
    return failed(name, key, f"Slack refused SLACK_BOT_TOKEN ({auth.error})", fix)


def scopes_result(auth: SlackAuth, wanted: Iterable[str]) -> CheckResult:
    name, key = "Slack scopes", SLACK_SCOPES
    if not auth.ok:
        return skipped(name, key, "not checked: the token was not accepted")
    if auth.scopes is None:
        return skipped(name, key, "not checked: Slack did not list the token's scopes")
    wanted = list(dict.fromkeys(wanted))
    missing = [s for s in wanted if s not in auth.scopes]
    if missing and set(missing) <= HISTORY_SCOPES:
        return passed(name, key, f"{len(wanted) - len(missing)} of {len(wanted)} granted: "
                      "the smaller manifest (manifest.no-history.yml), so message triggers "
                      "and the look-up for lost posts are off")
    if missing:
        return failed(name, key, f"missing {', '.join(missing)}",
                      "add them under OAuth & Permissions > Bot Token Scopes (or paste "
                      "manifest.yml into the app's manifest), reinstall the app, and put the "
                      "new token in SLACK_BOT_TOKEN if it changed")
    return passed(name, key, f"all {len(wanted)} that manifest.yml asks for are granted")


def signing_secret_result(settings: Settings) -> CheckResult:
    name, key = "Slack signing secret", SLACK_SIGNING_SECRET
    if settings.slack_signing_secret is None:
        return skipped(name, key, "not set: Socket Mode needs none")
    return passed(name, key, "set; a Slack request it does not verify is logged as a WARNING")


async def check_socket_mode(settings: Settings) -> CheckResult | None:
    """apps.connections.open with SLACK_APP_TOKEN (None when it is not set)."""
    if not settings.slack_app_token:
        return None
    client = AsyncWebClient(base_url=settings.slack_api_url, timeout=SLACK_TIMEOUT)
    try:
        await client.apps_connections_open(app_token=settings.slack_app_token)
    except Exception as exc:
        return socket_mode_failure(exc)
    return socket_mode_ok()


def socket_mode_ok() -> CheckResult:
    return passed("Slack Socket Mode", SLACK_SOCKET_MODE,
                  "SLACK_APP_TOKEN opens a Socket Mode connection")


def socket_mode_failure(exc: BaseException) -> CheckResult:
    error, transient, _ = _slack_failure(exc)
    name, key = "Slack Socket Mode", SLACK_SOCKET_MODE
    if transient:
        return failed(name, key, f"Slack did not answer apps.connections.open ({error})",
                      "check the network and SLACK_API_URL", transient=True)
    return failed(name, key, f"Slack refused SLACK_APP_TOKEN ({error})",
                  "create an app-level token (xapp-...) with scope connections:write under "
                  "Basic Information > App-Level Tokens, put it in SLACK_APP_TOKEN, and turn "
                  "Socket Mode on (Settings > Socket Mode)")


async def check_notify_channel(settings: Settings, client: AsyncWebClient, auth: SlackAuth
                               ) -> CheckResult:
    """CALLBOT_NOTIFY_CHANNEL exists and the bot can post there: a member, or a public
    channel with chat:write.public. conversations.info needs channels:read, which the
    manifest does not ask for; without it, conversations.history (a member may read) tells."""
    name, key = "Notify channel", NOTIFY_CHANNEL
    channel = settings.notify_channel
    if not channel:
        return skipped(name, key, "CALLBOT_NOTIFY_CHANNEL not set: calls not started from "
                       "Slack get no card")
    if not auth.ok:
        return skipped(name, key, "not checked: the token was not accepted")
    try:
        info = await client.conversations_info(channel=channel)
    except Exception as exc:
        error, transient, _ = _slack_failure(exc)
        if error == "missing_scope":
            return await _notify_by_history(settings, client, auth)
        return _channel_failure(channel, error, transient)
    found = info.get("channel") or {}
    label = f"#{found['name']}" if found.get("name") else channel
    if found.get("is_archived"):
        return failed(name, key, f"{label} is archived",
                      "unarchive it, or set CALLBOT_NOTIFY_CHANNEL to another channel's id")
    if found.get("is_member"):
        return passed(name, key, f"{label}: the bot is a member")
    private = bool(found.get("is_private") or found.get("is_group") or found.get("is_im"))
    return _not_member(label, private, auth, _bot_name(auth))


async def _notify_by_history(settings: Settings, client: AsyncWebClient, auth: SlackAuth
                             ) -> CheckResult:
    channel = settings.notify_channel or ""
    try:
        await client.conversations_history(channel=channel, limit=1)
    except Exception as exc:
        error, transient, _ = _slack_failure(exc)
        if error == "not_in_channel":  # public, and the bot is not in it
            return _not_member(channel, False, auth, _bot_name(auth))
        return _channel_failure(channel, error, transient)
    return passed("Notify channel", NOTIFY_CHANNEL, f"{channel}: the bot is a member")


def _bot_name(auth: SlackAuth) -> str:
    user = auth.response.get("user") if auth.response is not None else None
    return f"@{user}" if user else "the bot"


def _not_member(label: str, private: bool, auth: SlackAuth, bot: str) -> CheckResult:
    name, key = "Notify channel", NOTIFY_CHANNEL
    if private:
        return failed(name, key, f"{label} is private and the bot is not in it",
                      f"/invite {bot} in {label}")
    if auth.scopes is None or "chat:write.public" in auth.scopes:
        return passed(name, key, f"{label}: public; the bot posts without joining "
                      "(chat:write.public)")
    return failed(name, key, f"{label}: the bot is not a member and chat:write.public is "
                  "not granted", f"/invite {bot} in {label}, or grant chat:write.public and "
                  "reinstall the app")


def _channel_failure(channel: str, error: str, transient: bool) -> CheckResult:
    name, key = "Notify channel", NOTIFY_CHANNEL
    if transient:
        return failed(name, key, f"Slack did not answer about {channel} ({error})",
                      "check the network and SLACK_API_URL", transient=True)
    if error == "channel_not_found":
        return failed(name, key, f"Slack knows no channel {channel} that the bot can see",
                      "set CALLBOT_NOTIFY_CHANNEL to the channel's id (C..., at the bottom of "
                      "its details), and /invite the bot if the channel is private")
    return failed(name, key, f"Slack refused to look at {channel} ({error})",
                  "check CALLBOT_NOTIFY_CHANNEL and the app's scopes")


def oauth_results(settings: Settings) -> list[CheckResult]:
    """With the install flow there is no token to check until a workspace installs the
    app: each installation's token and scopes are Slack's answer to that install."""
    return [
        passed("Slack token", SLACK_TOKEN, "install flow (SLACK_CLIENT_ID): each workspace's "
               "token comes with its install at /slack/install"),
        skipped("Slack scopes", SLACK_SCOPES, "asked for at each install: manifest.yml's"),
        signing_secret_result(settings),
    ]


async def check_slack(settings: Settings, client: AsyncWebClient,
                      auth: SlackAuth | None = None) -> list[CheckResult]:
    """Every Slack item: the token, its scopes, how Slack reaches us, the notify channel."""
    if settings.oauth:
        return oauth_results(settings)
    auth = auth if auth is not None else await ask_slack_auth(client)
    results = [token_result(auth), scopes_result(auth, wanted_scopes())]
    if settings.slack_signing_secret is not None or not settings.slack_app_token:
        results.append(signing_secret_result(settings))
    socket_mode = await check_socket_mode(settings)
    if socket_mode is not None:
        results.append(socket_mode)
    results.append(await check_notify_channel(settings, client, auth))
    return results


# -- Retell -----------------------------------------------------------------------------------


def _reason(exc: RetellError) -> str:
    text = f"HTTP {exc.status}: {exc.reason}" if exc.status else f"{exc.kind}: {exc.reason}"
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def _retell_failure(name: str, key: str, doing: str, exc: RetellError) -> CheckResult:
    if exc.transient:
        return failed(name, key, f"Retell did not answer {doing} ({_reason(exc)})",
                      "check the network and RETELL_BASE_URL; if Retell is down, it is asked "
                      "again", transient=True)
    return failed(name, key, f"Retell refused {doing} ({_reason(exc)})",
                  "check RETELL_API_KEY and the account in the Retell dashboard")


def retell_key_result(agents: list[Agent] | RetellError) -> CheckResult:
    name, key = "Retell API key", RETELL_KEY
    if isinstance(agents, list):
        return passed(name, key, f"accepted; the account has {len(agents)} agent(s)")
    exc = agents
    if exc.transient:
        return _retell_failure(name, key, "list-agents", exc)
    if exc.status == 402:
        return failed(name, key, f"Retell refused the account ({_reason(exc)})",
                      "the trial ended or a payment failed: see Billing in the Retell "
                      "dashboard")
    return failed(name, key, f"Retell refused RETELL_API_KEY ({_reason(exc)})",
                  "copy an API key from the Retell dashboard (Settings > API Keys) into "
                  "RETELL_API_KEY")


def _agent_label(agent_id: str, agents: Mapping[str, Agent]) -> str:
    agent = agents.get(agent_id)
    return f"{agent.agent_name} ({agent_id})" if agent and agent.agent_name else agent_id


def from_number_result(settings: Settings, numbers: list[CallerNumber],
                       agents: Mapping[str, Agent]) -> CheckResult:
    name, key = "RETELL_FROM_NUMBER", RETELL_FROM_NUMBER
    wanted = settings.retell_from_number
    shown = mask_phone(wanted)
    number = next((n for n in numbers if n.phone_number == wanted), None)
    if number is None:
        others = ", ".join(mask_phone(n.phone_number) for n in numbers[:3])
        return failed(name, key, f"{shown} is not one of the account's {len(numbers)} "
                      "number(s)", "buy or import it under Phone Numbers in Retell, or set "
                      "RETELL_FROM_NUMBER to one of the account's numbers"
                      + (f" ({others}{', ...' if len(numbers) > 3 else ''})" if others else ""))
    outbound = number.outbound_agents or (
        (number.outbound_agent_id,) if number.outbound_agent_id else ())
    if outbound:
        shown_agents = ", ".join(_agent_label(a, agents) for a in outbound)
        return passed(name, key, f"{shown} is in the account; outbound agent {shown_agents}")
    if settings.retell_agent_id:
        return passed(name, key, f"{shown} is in the account; no outbound agent of its own, "
                      "calls use RETELL_AGENT_ID")
    return failed(name, key, f"{shown} has no outbound agent: a /call naming no agent cannot "
                  "be placed", "pick its outbound call agent under Phone Numbers in Retell, "
                  "or set RETELL_AGENT_ID")


def agent_result(settings: Settings, agents: Mapping[str, Agent]) -> CheckResult:
    name, key = "RETELL_AGENT_ID", RETELL_AGENT
    agent_id = settings.retell_agent_id
    if not agent_id:
        return skipped(name, key, "not set: the agent bound to RETELL_FROM_NUMBER answers")
    if agent_id not in agents:
        return failed(name, key, f"{agent_id} is not an agent of this Retell account",
                      "copy the agent's id from Agents in the Retell dashboard into "
                      "RETELL_AGENT_ID, or leave it empty to use the number's agent")
    return passed(name, key, f"{_agent_label(agent_id, agents)} exists")


def webhook_expected(settings: Settings) -> str | None:
    return f"{settings.public_url}/retell/webhook" if settings.public_url else None


def _shown_url(url: str) -> str:
    """A URL without what may be a secret in it (user info, query, fragment)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "a URL that does not parse"
    shown = f"{parts.scheme}://{host}{port}{parts.path}" if parts.scheme else parts.path
    return scrub(shown[:MAX_DETAIL])


def webhook_result(settings: Settings, agent_id: str, found: Agent | RetellError,
                   agents: Mapping[str, Agent]) -> CheckResult:
    label = _agent_label(agent_id, agents)
    name, key = f"Retell webhook of {label}", f"{RETELL_WEBHOOK}:{agent_id}"
    expected = webhook_expected(settings) or ""
    if isinstance(found, RetellError):
        return _retell_failure(name, key, f"get-agent for {agent_id}", found)
    actual = found.webhook_url
    if not actual:
        return passed(name, key, "no webhook URL of its own: the account's applies (Retell's "
                      f"API does not show it; it must be {expected})")
    if actual.rstrip("/") != expected:
        return failed(name, key, f"sends webhooks to {_shown_url(actual)}, not to {expected}",
                      f"set the agent's webhook URL in Retell to {expected} (or fix "
                      "CALLBOT_PUBLIC_URL)")
    return passed(name, key, f"sends webhooks to {expected}")


async def check_retell(settings: Settings, client: RetellClient) -> list[CheckResult]:
    """Every Retell item: the key, the caller number, the default agent, the agents'
    webhook URLs. Items after a key Retell refuses are skipped, not failed again."""
    if settings.simulated:
        return [skipped(n, k, "simulated: skipped") for n, k in (
            ("Retell API key", RETELL_KEY), ("RETELL_FROM_NUMBER", RETELL_FROM_NUMBER),
            ("RETELL_AGENT_ID", RETELL_AGENT), ("Retell webhooks", RETELL_WEBHOOK))]
    try:
        listed: list[Agent] | RetellError = await client.list_agents()
    except RetellError as exc:
        listed = exc
    key = retell_key_result(listed)
    if not isinstance(listed, list):
        why = "not checked: Retell did not accept the key"
        return [key, skipped("RETELL_FROM_NUMBER", RETELL_FROM_NUMBER, why),
                skipped("RETELL_AGENT_ID", RETELL_AGENT, why),
                skipped("Retell webhooks", RETELL_WEBHOOK, why)]
    agents = {a.agent_id: a for a in listed}
    results = [key]
    try:
        numbers = await client.list_phone_numbers()
    except RetellError as exc:
        results.append(_retell_failure("RETELL_FROM_NUMBER", RETELL_FROM_NUMBER,
                                       "list-phone-numbers", exc))
        numbers = []
    else:
        results.append(from_number_result(settings, numbers, agents))
    results.append(agent_result(settings, agents))
    results.extend(await _check_webhooks(settings, client, numbers, agents))
    return results


async def _check_webhooks(settings: Settings, client: RetellClient,
                          numbers: list[CallerNumber], agents: Mapping[str, Agent]
                          ) -> list[CheckResult]:
    """The webhook URL of every agent whose calls reach this server: RETELL_AGENT_ID and
    the agents bound to RETELL_FROM_NUMBER, both ways."""
    if not settings.public_url:
        return [skipped("Retell webhooks", RETELL_WEBHOOK,
                        "CALLBOT_PUBLIC_URL not set: the agents' webhook URLs not compared")]
    number = next((n for n in numbers if n.phone_number == settings.retell_from_number), None)
    found_ids: list[str | None] = [settings.retell_agent_id] if (
        settings.retell_agent_id in agents) else []
    if number is not None:
        found_ids += [*number.outbound_agents, number.outbound_agent_id,
                      *number.inbound_agents]
    ids = list(dict.fromkeys(i for i in found_ids if i))
    if not ids:
        return [skipped("Retell webhooks", RETELL_WEBHOOK, "no agent to check: none is set "
                        "or bound to RETELL_FROM_NUMBER")]
    results = []
    for agent_id in ids:
        try:
            found: Agent | RetellError = await client.get_agent(agent_id)
        except RetellError as exc:
            found = exc
        results.append(webhook_result(settings, agent_id, found, agents))
    return results


# -- all of it --------------------------------------------------------------------------------


def retell_client(settings: Settings) -> RetellClient:
    """A client of its own for the checks: no retries (a check reports what it sees; serve
    asks again later) and none of the app's metrics."""
    return RetellClient(settings.retell_api_key, base_url=settings.retell_base_url,
                        timeout=settings.retell_timeout_seconds, retries=0)


async def run_checks(settings: Settings) -> list[CheckResult]:
    """Every check, Slack's and Retell's side by side, in a fixed order."""
    slack = AsyncWebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url,
                           timeout=SLACK_TIMEOUT,
                           retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=1)])
    retell = retell_client(settings)
    try:
        slack_results, retell_results = await asyncio.gather(
            check_slack(settings, slack), check_retell(settings, retell))
    finally:
        await retell.aclose()
    return [*slack_results, *retell_results]


# -- printing ---------------------------------------------------------------------------------

MARKS = {"ok": "✓", "failed": "✗", "skipped": "–"}
ASCII_MARKS = {"ok": "ok", "failed": "XX", "skipped": "--"}


def secrets_of(settings: Settings) -> list[str]:
    values = (settings.slack_bot_token, settings.slack_signing_secret, settings.slack_app_token,
              settings.retell_api_key, settings.retell_webhook_key)
    return [v for v in values if v and len(v) >= 4]


def redact(text: str, secrets: Iterable[str]) -> str:
    """A line fit to print or log: no configured secret, token or whole number in it."""
    for secret in secrets:
        text = text.replace(secret, "[redacted]")
    return scrub(text)


def format_result(result: CheckResult, marks: Mapping[str, str] = MARKS) -> str:
    mark = marks["skipped" if result.skipped else "ok" if result.ok else "failed"]
    line = f"{mark} {result.name}: {result.detail}"
    return f"{line}; fix: {result.fix}" if not result.ok and result.fix else line


def format_results(results: list[CheckResult], marks: Mapping[str, str] = MARKS) -> list[str]:
    lines = [format_result(r, marks) for r in results]
    problems = sum(1 for r in results if not r.ok)
    lines.append(f"{problems} problem(s) to fix." if problems else "Everything needed passes.")
    return lines


def _marks_for(stream: TextIO) -> Mapping[str, str]:
    try:
        "".join(MARKS.values()).encode(stream.encoding or "ascii")
    except (LookupError, UnicodeEncodeError):
        return ASCII_MARKS
    return MARKS


def run_check(settings: Settings, stream: TextIO | None = None) -> int:
    """`callbot check`: print one line per item; 0 when everything needed passes, else 1."""
    install_scrubbing()  # a library's own log line (stderr) carries no token either
    out = stream if stream is not None else sys.stdout
    results = asyncio.run(run_checks(settings))
    secrets = secrets_of(settings)
    for line in format_results(results, _marks_for(out)):
        print(redact(line, secrets), file=out)
    return 0 if all_passed(results) else 1
