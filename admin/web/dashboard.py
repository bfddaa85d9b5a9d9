"""The dashboard: counts, and per day issuance/revocation (from the audit log) and OCSP/verification
traffic (``core.traffic``) as SVG charts drawn on the server."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from admin import service
from admin.web.console import AnyOperator, ConsoleRoute, render
from core import audit, clock, traffic
from core.runtime import Runtime

log = logging.getLogger("eauth.admin")

router = APIRouter(prefix="/admin", route_class=ConsoleRoute, include_in_schema=False)

ISSUE_ACTIONS = ("ca.certificate.issue", "ca.certificate.renew", "ca.certificate.rekey", "ca.certificate.modify")
REVOKE_ACTIONS = ("ca.certificate.revoke",)
CHART_DAYS = 30


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    height: float
    width: float
    value: int
    day: str
    series: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    ticks: tuple[tuple[float, str], ...]  # (x, label) every few days
    grid: tuple[tuple[float, int], ...]  # (y, value)
    maximum: int
    plot_left: int
    plot_bottom: int


def daily_chart(days: list[str], series: dict[str, dict[str, int]], *, width: int = 840, height: int = 220) -> Chart:
    """Bar geometry for grouped bars per day (a pure function: tested without a browser)."""
    left, right, top, bottom = 36, 8, 10, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    maximum = max([1, *(v for s in series.values() for v in s.values())])
    # a "nice" upper bound so grid lines fall on round numbers
    step = max(1, -(-maximum // 4))
    maximum = step * 4
    slot = plot_w / max(len(days), 1)
    names = list(series)
    bar_w = max(1.0, (slot - 2) / max(len(names), 1))
    bars = []
    for i, day in enumerate(days):
        for j, name in enumerate(names):
            value = series[name].get(day, 0)
            h = plot_h * value / maximum
            bars.append(Bar(round(left + i * slot + 1 + j * bar_w, 2), round(top + plot_h - h, 2), round(h, 2), round(bar_w, 2), value, day, name))
    every = max(1, len(days) // 6)
    ticks = tuple((round(left + i * slot + slot / 2, 2), day[5:]) for i, day in enumerate(days) if i % every == 0)
    grid = tuple((round(top + plot_h - plot_h * k / 4, 2), step * k) for k in range(5))
    return Chart(width, height, tuple(bars), ticks, grid, maximum, left, top + plot_h)


def short(value: int) -> str:
    """An axis label that fits the chart's margin: 950, 12k, 3.4M."""
    if value >= 1_000_000:
        return f"{value / 1_000_000:.3g}M"
    if value >= 10_000:
        return f"{value / 1_000:.3g}k"
    return str(value)


def _traffic(rt: Runtime, since: date) -> dict[str, dict[str, int]]:
    """OCSP responses and verifications per day, summed over every process (``core.traffic``);
    this process's counts not yet written are written first, so the page is current here."""
    try:
        traffic.flush(rt)
    except Exception:  # noqa: BLE001 - the chart lags by one flush interval at worst
        log.warning("traffic counts not flushed before the dashboard", exc_info=True)
    with rt.db.read() as db:
        return traffic.daily(db, kinds=traffic.KINDS, since=since)


@dataclass(frozen=True)
class Figures:
    days: list[str]
    counts: dict[str, int]
    per_day: dict[str, dict[str, int]]  # issued, revoked, ocsp, verifications → {day: count}


def figures(rt: Runtime, actor_ref: str) -> Figures:
    """The dashboard's numbers (the console page and ``GET /api/v1/dashboard``)."""
    from ca import service as ca_service
    from identity import service as identity

    today = clock.now().astimezone(UTC).date()
    days = [(today - timedelta(days=CHART_DAYS - 1 - i)).isoformat() for i in range(CHART_DAYS)]
    since = clock.now() - timedelta(days=CHART_DAYS)
    with rt.db.read() as db:
        per_day = audit.daily_counts(db, actions={"issued": ISSUE_ACTIONS, "revoked": REVOKE_ACTIONS}, since=since.replace(hour=0, minute=0, second=0))
        counts = {
            "persons": identity.count_persons(db),
            "orgs": identity.count_orgs(db),
            "awaiting": service.list_requests(db, awaiting=actor_ref, limit=1).total,
            "submitted": service.request_counts(db).get("submitted", 0),
            "issued_30d": sum(per_day["issued"].values()),
            "revoked_30d": sum(per_day["revoked"].values()),
            "expiring_30d": len(ca_service.expiring(db, days=30)),
        }
    per_day_traffic = _traffic(rt, today - timedelta(days=CHART_DAYS - 1))
    counts.update({f"{kind}_today": per_day_traffic[kind].get(today.isoformat(), 0) for kind in traffic.KINDS})
    counts.update({f"{kind}_30d": sum(per_day_traffic[kind].values()) for kind in traffic.KINDS})
    return Figures(days, counts, {**per_day, **per_day_traffic})


@router.get("", response_class=HTMLResponse, name="admin_dashboard")
def dashboard(request: Request, user: AnyOperator) -> HTMLResponse:
    rt: Runtime = request.app.state.runtime
    f = figures(rt, user.actor.ref)
    chart = daily_chart(f.days, {"issued": f.per_day["issued"], "revoked": f.per_day["revoked"]}, width=1100, height=190)
    traffic_chart = daily_chart(f.days, {"ocsp_responses": f.per_day["ocsp"], "verifications": f.per_day["verifications"]}, width=1100, height=190)
    return render(request, "dashboard.html", {"counts": f.counts, "chart": chart, "traffic_chart": traffic_chart, "short": short})
