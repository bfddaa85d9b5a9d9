"""The dashboard: counts, and issuance/revocation per day as an SVG drawn on the server."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from admin import service
from admin.web.console import AnyOperator, ConsoleRoute, render
from core import audit, clock
from core.runtime import Runtime

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


def _traffic() -> dict[str, int]:
    """OCSP responses and verifications answered by this process since it started."""
    from core import metrics

    out = {}
    for name, counter in (("ocsp", metrics.OCSP_RESPONSES), ("verifications", metrics.VERIFICATIONS)):
        total = 0.0
        for family in counter.collect():
            total += sum(s.value for s in family.samples if s.name.endswith("_total"))
        out[name] = int(total)
    return out


@router.get("", response_class=HTMLResponse, name="admin_dashboard")
def dashboard(request: Request, user: AnyOperator) -> HTMLResponse:
    from ca import service as ca_service
    from identity import service as identity

    rt: Runtime = request.app.state.runtime
    today = clock.now().astimezone(UTC).date()
    days = [(today - timedelta(days=CHART_DAYS - 1 - i)).isoformat() for i in range(CHART_DAYS)]
    since = clock.now() - timedelta(days=CHART_DAYS)
    with rt.db.read() as db:
        per_day = audit.daily_counts(db, actions={"issued": ISSUE_ACTIONS, "revoked": REVOKE_ACTIONS}, since=since.replace(hour=0, minute=0, second=0))
        counts = {
            "persons": identity.count_persons(db),
            "orgs": identity.count_orgs(db),
            "awaiting": service.list_requests(db, awaiting=user.actor.ref, limit=1).total,
            "submitted": service.request_counts(db).get("submitted", 0),
            "issued_30d": sum(per_day["issued"].values()),
            "revoked_30d": sum(per_day["revoked"].values()),
            "expiring_30d": len(ca_service.expiring(db, days=30)),
        }
    counts.update(_traffic())
    chart = daily_chart(days, per_day, width=1100, height=210)
    return render(request, "dashboard.html", {"counts": counts, "chart": chart})
