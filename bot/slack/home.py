"""Keeps each person's App Home current: on opening, and after their calls change."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from bot.calls.insights import day_in
from bot.calls.service import CallService
from bot.render.catalog import DEFAULT_LANGUAGE, words
from bot.render.views import MAX_HOME_CALLS, home_view
from bot.runtime.drawing import Drawing
from bot.slack.installs import team_scope
from bot.slack.people import Languages
from storage.models import CallFilter, CallStats

log = logging.getLogger(__name__)
WEEK = 7 * 24 * 3600
# Refreshes after a call changes reuse the team's week figures for a while, in proportion
# to what they cost: with a long history they are the costly part of a publish, and a burst
# of calls would repeat them. Cheap figures are always fresh; dear ones at most 30 s old.
TEAM_FIGURES_REUSE = 100.0  # reuse for this many times the time they took to count
TEAM_FIGURES_TTL = 30.0
CHART_DAYS = 14
CHART_TTL = 600.0  # the Home chart is drawn and uploaded again at most this often


class HomePublisher:
    def __init__(
        self,
        calls: CallService,
        client: AsyncWebClient,
        *,
        show_full_numbers: bool = False,
        debounce: float = 1.0,
        languages: Languages | None = None,
        simulated: bool = False,
        drawing: Drawing | None = None,
        several_workspaces: bool = False,
    ) -> None:
        self.calls = calls
        # With several workspaces each one's Home shows its own figures and chart.
        self.several_workspaces = several_workspaces
        self.client = client
        self.languages = languages  # each person's Home is in their language
        self.simulated = simulated
        self.show_full_numbers = show_full_numbers
        self.debounce = debounce
        self._pending: dict[str, asyncio.Task[None]] = {}
        # workspace (None: the only one) -> (when, cost, figures)
        self._team: dict[str | None, tuple[float, float, CallStats]] = {}
        self.drawing = drawing or Drawing()  # the chart's worker process
        # (workspace, lang) -> (when, file id)
        self._chart: dict[tuple[str | None, str], tuple[float, str | None]] = {}
        self._drawing = asyncio.Lock()

    async def publish(self, user_id: str, *, fresh: bool = True) -> None:
        """Render and publish now; a failure is logged, never raised (Home is a view).
        `fresh` False: the team's figures may be up to TEAM_FIGURES_TTL seconds old."""
        try:
            recent = await self.calls.recent_calls(user_id, MAX_HOME_CALLS)
            team = await self._team_figures(fresh)
            lang = (await self.languages.of(user_id) if self.languages is not None
                    else DEFAULT_LANGUAGE)
            view = home_view(recent, team, show_full_numbers=self.show_full_numbers,
                             lang=lang, simulated=self.simulated,
                             chart_file=await self._chart_file(lang))
            await self.client.views_publish(user_id=user_id, view=view)
        except SlackApiError as exc:
            log.warning("home not published user=%s error=%s", user_id,
                        exc.response.get("error") if exc.response is not None else "?")
        except Exception:
            log.exception("home not published user=%s", user_id)

    async def _team_figures(self, fresh: bool) -> CallStats:
        now = time.monotonic()
        team = team_scope(self.several_workspaces)
        known = self._team.get(team)
        if not fresh and known is not None:
            at, cost, figures = known
            if now - at <= min(TEAM_FIGURES_TTL, cost * TEAM_FIGURES_REUSE):
                return figures
        since = time.time() - WEEK
        if team is None:
            figures = await self.calls.stats_since(since)
        else:
            figures = (await self.calls.store.report(CallFilter(since=since, team_id=team),
                                                     with_fields=False)).stats
        self._team[team] = (now, time.monotonic() - now, figures)
        return figures

    async def _chart_file(self, lang: str) -> str | None:
        """The team's calls-per-day chart, drawn off the loop and uploaded (no channel: only
        the Home tab shows it), again at most every CHART_TTL seconds; None if it fails."""
        team = team_scope(self.several_workspaces)
        async with self._drawing:
            now = time.monotonic()
            cached = self._chart.get((team, lang))
            if cached is not None and now - cached[0] < CHART_TTL:
                return cached[1]
            file_id: str | None = None
            try:
                since = time.time() - CHART_DAYS * 86400
                report = await self.calls.store.report(CallFilter(since=since, team_id=team),
                                                       with_fields=False,
                                                       days_in=day_in("UTC"))
                title = words(lang, "home.chart_title")
                png = await self.drawing.chart(report.days, title=title, lang=lang,
                                               english_title=words("en", "home.chart_title"))
                uploaded = await self.client.files_upload_v2(
                    content=png, filename="callbot-calls-per-day.png", title=title)
                file_id = str(uploaded["file"]["id"])
            except Exception as exc:  # Home shows its figures without the chart
                log.warning("home chart not made: %s", type(exc).__name__)
            self._chart[(team, lang)] = (now, file_id)
            return file_id

    def refresh(self, user_id: str) -> None:
        """Publish soon; a burst of changes to one person's calls becomes one publish."""
        if user_id in self._pending:
            return
        self._pending[user_id] = asyncio.create_task(self._later(user_id))

    async def _later(self, user_id: str) -> None:
        try:
            await asyncio.sleep(self.debounce)
        finally:
            self._pending.pop(user_id, None)
        await self.publish(user_id, fresh=False)

    async def stop(self) -> None:
        tasks = list(self._pending.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
