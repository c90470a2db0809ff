"""Wiring: one aiohttp server for Slack (via Bolt), Retell's webhooks and health checks."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Middleware
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.context.async_context import AsyncBoltContext
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.web.async_client import AsyncWebClient

from bot.calls.campaigns import CampaignRunner, Campaigns
from bot.calls.ingest import Ingest
from bot.calls.insights import Insights
from bot.calls.placing import Placing
from bot.calls.polling import Poller
from bot.calls.retention import Retention
from bot.calls.scheduling import Scheduler, Scheduling
from bot.calls.service import CallService
from bot.calls.sums import StatsSums
from bot.config import Settings
from bot.context import AppContext
from bot.guard.admission import Guard
from bot.http import edge
from bot.render.answers import CardWords
from bot.retell.client import RetellClient
from bot.runtime.drawing import Drawing
from bot.runtime.logs import LOGGED, install_scrubbing
from bot.runtime.metrics import Metrics
from bot.runtime.tasks import InFlight
from bot.setup.monitor import SetupMonitor
from bot.setup.scopes import wanted_scopes
from bot.slack.home import HomePublisher
from bot.slack.installs import (
    StoreInstallations,
    StoreStates,
    TeamClient,
    TeamTokens,
    for_team,
    working_for,
)
from bot.slack.outbox import OutboxWorker, RetryPolicy
from bot.slack.people import Languages
from handlers import health, register_all, webhook
from handlers.campaigns import campaign_sinks
from handlers.scheduling import SlackScheduleSink
from storage.base import Store
from storage.stores import make_store

if TYPE_CHECKING:
    from bot.retell.simulator import RetellSimulator, Timings

log = logging.getLogger("bot.http")
CONTEXT = web.AppKey("context", AppContext)
# The set-up checks serve runs in the background (bot/setup/monitor.py), shown in /healthz.
SETUP_CHECKS = web.AppKey("setup_checks", SetupMonitor)
# Retell's call payloads carry word-level transcripts: an hour-long call runs to megabytes.
# The cap of /retell/webhook, counted on the wire by bot.http.edge (Slack's is 1 MiB there).
MAX_BODY_BYTES = 32 * 1024 * 1024


def access_log(metrics: Metrics) -> Middleware:
    @web.middleware
    async def middleware(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            elapsed = time.perf_counter() - started
            # The route's pattern, not the path: unknown paths must not grow the metrics.
            resource = request.match_info.route.resource
            route = resource.canonical if resource is not None else "other"
            metrics.requests.labels(route, str(status)).inc()
            metrics.request_seconds.labels(route).observe(elapsed)
            if not request.get(LOGGED):
                log.info("%s %s %d %.1f ms", request.method, request.path, status,
                         elapsed * 1000)

    return middleware


def build_context(settings: Settings) -> tuple[AppContext, AsyncWebClient, RetellClient]:
    metrics = Metrics()
    store = make_store(settings.database_url, pool_size=settings.database_pool_size)
    retell = RetellClient(
        settings.retell_api_key,
        base_url=settings.retell_base_url,
        timeout=settings.retell_timeout_seconds,
        retries=settings.retell_retries,
        observe=metrics.observe_retell,
    )
    # Several workspaces: each one's bot token from its installation (bot/slack/installs.py).
    tokens = TeamTokens(store) if settings.oauth else None
    # For answers to people: a 429 means Slack did nothing, so retrying it is safe.
    slack = _slack_client(settings, [AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
                          tokens)
    calls = CallService(
        store, retell, from_number=settings.retell_from_number,
        default_agent_id=settings.retell_agent_id, poll_after=settings.poll_after_seconds,
        words=CardWords(),
    )
    languages = Languages(slack, settings.language)
    drawing = Drawing()
    home = HomePublisher(calls, slack, show_full_numbers=settings.show_full_numbers,
                         several_workspaces=settings.oauth,
                         languages=languages, simulated=settings.simulated, drawing=drawing)
    # The outbox has a client of its own without retry handlers: it keeps its own
    # schedule (Retry-After, backoff), and knows when a retry could post twice.
    outbox = OutboxWorker(
        store, _slack_client(settings, [], tokens), notify_channel=settings.notify_channel,
        show_full_numbers=settings.show_full_numbers, on_card=home.refresh,
        post_transcripts=settings.post_transcripts, post_recordings=settings.post_recordings,
        policy=RetryPolicy(
            base=settings.outbox_retry_base, cap=settings.outbox_retry_max,
            max_attempts=settings.outbox_max_attempts,
            channel_rate=settings.slack_channel_rate,
        ),
        metrics=metrics,
        language=settings.channel_language,
        simulated=settings.simulated,
    )
    calls.subscribe(enqueued=outbox.wake, user_calls=home.refresh)
    ingest = Ingest(store, calls, default_channel=settings.notify_channel is not None,
                    on_applied=outbox.wake)
    guard = Guard(settings, store)
    placing = Placing(calls, guard, CardWords())
    scheduling = Scheduling(store, guard, placing,
                            grace=settings.schedule_grace_minutes * 60)
    campaigns = Campaigns(settings, store, guard, placing)
    ctx = AppContext(settings, store, calls, outbox, home, metrics, InFlight(), guard, ingest,
                     placing, languages, scheduling, campaigns, Insights(store), drawing)
    return ctx, slack, retell


def _reparse_form(request: AsyncBoltRequest) -> None:
    """slack_bolt (1.30) reads any form body containing "payload" as an interaction; a slash
    command typed with that word, or sent from a channel whose name has it, then parses as
    nothing and is answered 404. Read such a form as the plain form it is."""
    form = dict(parse_qsl(request.raw_body, keep_blank_values=True))
    if form and "payload" not in form:
        request.body = form
        request.context = build_async_context(AsyncBoltContext(), form)


def _slack_client(settings: Settings, retry: list[AsyncRetryHandler],
                  tokens: TeamTokens | None) -> AsyncWebClient:
    """Only the retries we choose: slack_sdk's default one after a lost connection could
    post a message twice (Slack may have posted it before the connection dropped)."""
    if tokens is not None:
        return TeamClient(tokens=tokens, base_url=settings.slack_api_url,
                          logger=logging.getLogger("slack_sdk"), retry_handlers=retry)
    return AsyncWebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        logger=logging.getLogger("slack_sdk"),
        retry_handlers=retry,
    )


def _oauth_settings(settings: Settings, store: Store, client: AsyncWebClient
                    ) -> AsyncOAuthSettings | None:
    """Slack's install flow (SLACK_CLIENT_ID...): installations and states in our database,
    so any instance can take any step of it."""
    if not settings.oauth or not isinstance(client, TeamClient):
        return None
    redirect = (f"{settings.public_url.rstrip('/')}/slack/oauth_redirect"
                if settings.public_url else None)
    return AsyncOAuthSettings(
        client_id=settings.slack_client_id, client_secret=settings.slack_client_secret,
        scopes=list(wanted_scopes()), redirect_uri=redirect,
        installation_store=StoreInstallations(store, client.tokens),
        installation_store_bot_only=True,
        state_store=StoreStates(store, settings.slack_state_secret or ""),
    )


def create_app(settings: Settings, *, simulation: Timings | None = None) -> web.Application:
    """The server. With RETELL_MODE=simulate, Retell is simulated inside it (bot/retell/
    simulator.py); `simulation` sets how long its calls take (default: a few seconds)."""
    install_scrubbing()  # whoever embeds the app: no log line carries a number or a token
    ctx, slack, retell = build_context(settings)
    simulator: RetellSimulator | None = None
    if settings.simulated:  # imported only then: a live server never loads the stand-in
        from bot.retell.simulator import RetellSimulator, local_webhook_url

        simulator = RetellSimulator(
            api_key=settings.retell_api_key, webhook_key=settings.webhook_key,
            webhook_url=local_webhook_url(settings.host, settings.port),
            from_number=settings.retell_from_number, agent_id=settings.retell_agent_id,
            timings=simulation,
        )
    oauth = _oauth_settings(settings, ctx.store, slack)
    bolt = AsyncApp(
        # Named, so Bolt need not walk the call stack (inspect.stack, ~35 ms) to find one.
        name="callbot",
        client=slack,
        signing_secret=settings.slack_signing_secret or "",
        # In Socket Mode without a signing secret no HTTP route is mounted for Slack.
        request_verification_enabled=settings.slack_signing_secret is not None,
        logger=logging.getLogger("slack_bolt"),
        oauth_settings=oauth,
    )
    register_all(bolt, ctx)
    # Polls often enough to notice a late call within a few seconds of its deadline.
    # One lease owner id per process (the outbox's): leases keep work meant for one
    # process in one when two share the database during a rolling deploy.
    poller = Poller(ctx.calls, interval=min(5.0, max(0.05, settings.poll_after_seconds / 4)),
                    owner=ctx.outbox.owner)
    sums = StatsSums(ctx.store)  # /callstats' per-day sums, kept in step in the background
    retention = Retention(ctx.store, settings.retention_days,
                          housekeeping_days=settings.housekeeping_days, owner=ctx.outbox.owner)
    # Each scheduled call is claimed before it is fired: once, whichever process fires it.
    scheduler = Scheduler(ctx.scheduling, ctx.store, lambda entry: SlackScheduleSink(
        ctx, for_team(slack, entry.team_id), entry.channel_id))
    # Each campaign row's try is claimed before it is placed; one process runs them (a lease).
    runner = CampaignRunner(ctx.campaigns, ctx.store, campaign_sinks(ctx, slack),
                            owner=ctx.outbox.owner)
    applied = ctx.ingest.on_applied

    def on_applied() -> None:  # a campaign's call may have ended: its row frees a place
        applied()
        runner.nudge()

    ctx.ingest.on_applied = on_applied
    socket_mode: AsyncSocketModeHandler | None = None
    slack_http: aiohttp.ClientSession | None = None
    socket_tasks: list[asyncio.Task[None]] = []

    async def slack_events(request: web.Request) -> web.StreamResponse:
        """Bolt sees only what bot.http.edge verified (signature) and checked (what Bolt's request
        constructor parses); the body is already read, decoded here as UTF-8 as Slack sends."""
        raw = await request.read()
        try:
            bolt_request = AsyncBoltRequest(
                body=raw.decode("utf-8"), query=request.query_string,
                headers=request.headers,  # type: ignore[arg-type]
            )
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            return edge.refuse(request, 400, f"malformed Slack request ({type(exc).__name__})")
        if not bolt_request.body:
            _reparse_form(bolt_request)
        with ctx.inflight.answering(), working_for(bolt_request.context.team_id):
            bolt_response = await bolt.async_dispatch(bolt_request)
        return await to_aiohttp_response(bolt_response)

    async def slack_install(request: web.Request) -> web.StreamResponse:
        """The install flow's two pages (Bolt's): the "Add to Slack" page, which issues a
        state, and Slack's redirect back, which checks it and keeps the installation."""
        flow = bolt.oauth_flow
        if flow is None:
            raise web.HTTPNotFound()
        bolt_request = AsyncBoltRequest(body="", query=request.query_string,
                                        headers=request.headers)  # type: ignore[arg-type]
        if request.path == flow.install_path:
            bolt_response = await flow.handle_installation(bolt_request)
        else:
            bolt_response = await flow.handle_callback(bolt_request)
        return await to_aiohttp_response(bolt_response)

    async def on_startup(app: web.Application) -> None:
        nonlocal socket_mode, slack_http
        if simulator is not None:
            await simulator.start()
            retell.use_base_url(simulator.url)
        # One connection pool for every Slack call: slack_sdk otherwise opens a session (a
        # new connection, TLS included) per call, which costs more than the call itself.
        slack_http = aiohttp.ClientSession()
        slack.session = ctx.outbox.client.session = slack_http
        await ctx.store.open()
        ctx.ingest.start()
        ctx.outbox.start()
        poller.start()
        scheduler.start()
        runner.start()
        retention.start()
        sums.start()
        # The set-up checks (auth.test first) in the background: a Slack or Retell outage
        # never holds up /healthz or webhooks.
        setup_checks.start()
        if settings.slack_app_token:
            socket_mode = AsyncSocketModeHandler(bolt, settings.slack_app_token,
                                                 web_client=slack)
            # slack_sdk retries the connection until it works; in the background, so a
            # Slack outage at start-up never keeps /healthz and the webhook down.
            socket_tasks.append(asyncio.create_task(
                socket_mode.connect_async(), name="socket-mode"  # type: ignore[no-untyped-call]
            ))
            setup_checks.watch_socket_mode(socket_tasks[-1])  # its own check of the app token
        log.info("started: database %s, Retell at %s, Slack over %s", settings.database_label,
                 f"{simulator.url} (simulated)" if simulator else settings.retell_base_url,
                 "Socket Mode" if socket_mode else "HTTP")

    async def on_shutdown(app: web.Application) -> None:
        """No new requests now: stop taking Slack events over Socket Mode too."""
        log.info("stopping: finishing requests in flight")
        if socket_mode is not None:
            await socket_mode.close_async()  # type: ignore[no-untyped-call]
            for task in socket_tasks:
                task.cancel()
            await asyncio.gather(*socket_tasks, return_exceptions=True)

    async def on_cleanup(app: web.Application) -> None:
        grace = settings.shutdown_timeout
        try:
            if not await ctx.inflight.wait_idle(grace):
                log.warning("stopping: %d Slack listener(s) still running after %g s",
                            ctx.inflight.count, grace)
            await ctx.ingest.stop(grace)
            await poller.stop()
            await scheduler.stop(grace)
            await runner.stop(grace)
            await retention.stop()
            await sums.stop()
            await ctx.outbox.stop(grace)
            await ctx.home.stop()
            ctx.drawing.close()
        finally:
            await setup_checks.stop()
            if simulator is not None:
                await simulator.close()
            await retell.aclose()
            if slack_http is not None:
                await slack_http.close()
            await ctx.store.close()
            log.info("stopped: database closed")

    # The edge reads and caps bodies per route (bot.http.edge.SLACK_MAX_BODY for Slack);
    # client_max_size is what any other route may read.
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[
        access_log(ctx.metrics),
        edge.Edge(settings, ctx.metrics, retell_cap=MAX_BODY_BYTES).middleware(),
    ])
    app[CONTEXT] = ctx
    if settings.slack_signing_secret:
        app.router.add_post("/slack/events", slack_events)
    if bolt.oauth_flow is not None:
        app.router.add_get(bolt.oauth_flow.install_path, slack_install)
        app.router.add_get(bolt.oauth_flow.redirect_uri_path, slack_install)
    app.router.add_post("/retell/webhook", webhook.make_handler(ctx))
    setup_checks = app[SETUP_CHECKS] = SetupMonitor(settings, slack, bolt, ctx.metrics)
    app.router.add_get("/healthz", health.make_handler(ctx, setup_checks))
    app.router.add_get("/metrics", health.make_metrics_handler(ctx))
    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    app.on_cleanup.append(on_cleanup)
    return app
