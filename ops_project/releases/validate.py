"""Deploy validation: is the deployed service really this release, and does it really work?

Checks, each with its numbers: the served version (waiting for a rollout), every health endpoint,
the booking smoke flow (services → availability → book → cancel, leaving nothing behind), a
latency budget (p95 and error rate per endpoint) and a comparison with the last release that
passed. HTTP goes through httpx with timeouts; retries are our own so that every failed attempt
counts in the error rate, even when a retry then succeeds.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta

import httpx

from ops_project.common.checks import Check, all_passed, render
from ops_project.common.markdown import table
from ops_project.releases.compare import compare, p95
from ops_project.releases.config import ReleaseTarget
from ops_project.releases.rollback import rollback

RETRIES = 2


@dataclass
class Verdict:
    tag: str
    checks: list[Check]
    p95_ms: dict[str, float]
    error_rate: float
    rollback: dict | None = None
    samples_ms: dict[str, list[float]] | None = None  # the latency samples after warm-up, per endpoint

    @property
    def passed(self) -> bool:
        return all_passed(self.checks)

    @property
    def broken_release_live(self) -> bool:
        """A failed release that, as far as we know, still serves customers (no rollback brought back a good one)."""
        if self.passed:
            return False
        rb = self.rollback or {}
        if not rb.get("skipped"):
            return bool(rb.get("timed_out")) or rb.get("exit_code") != 0
        return rb.get("deployed", True)

    def rollback_summary(self) -> str:
        """One sentence: whether the rollback ran and how it ended (what the alert says)."""
        rb = self.rollback
        if not rb:
            return "Rollback: none (the release passed)."
        if rb.get("skipped"):
            return f"Rollback{' to ' + rb['to'] if rb.get('to') else ''}: not run ({rb.get('reason', 'skipped')})."
        if rb.get("timed_out"):
            return f"Rollback to {rb['to']}: ran and was killed at its timeout (the service may be half rolled back)."
        if rb.get("exit_code") == 0:
            return f"Rollback to {rb['to']}: ran and succeeded (exit 0)."
        return f"Rollback to {rb['to']}: ran and FAILED (exit {rb.get('exit_code')})."

    def markdown(self) -> str:
        after = []
        if self.p95_ms:
            after += [table(["endpoint", "p95 (ms)"], [(path, f"{ms:.1f}") for path, ms in self.p95_ms.items()])]
        if self.rollback:
            after += ["", self.rollback_summary(), "```", self.rollback["output"][-2000:], "```"]
        return render(f"Deploy validation of `{self.tag}`: {'PASSED' if self.passed else 'FAILED'}", self.checks,
                      after=after)


class _Http:
    """Requests with our own retries; counts every attempt and every failed one."""

    def __init__(self, target: ReleaseTarget):
        self.client = httpx.Client(base_url=target.base_url.rstrip("/"), timeout=target.request_timeout_seconds)
        self.attempts = 0
        self.failures = 0

    def request(self, method: str, path: str, *, ok: tuple[int, ...] = (200,), retries: int = RETRIES,
                **kw) -> tuple[httpx.Response | None, float, str]:
        last = ""
        for _ in range(retries + 1):
            self.attempts += 1
            t = time.perf_counter()
            try:
                resp = self.client.request(method, path, **kw)
                elapsed = (time.perf_counter() - t) * 1000
                if resp.status_code in ok:
                    return resp, elapsed, ""
                last = f"{method} {path} answered {resp.status_code}: {resp.text[:200]}"
                if resp.status_code < 500:
                    self.failures += 1
                    return resp, elapsed, last  # a 4xx is an answer, not a glitch: no retry
            except httpx.HTTPError as exc:
                elapsed = (time.perf_counter() - t) * 1000
                last = f"{method} {path} failed: {type(exc).__name__}: {exc}"
            self.failures += 1
            time.sleep(0.05)
        return None, elapsed, last

    def close(self) -> None:
        self.client.close()


class _Misrouted(Exception):
    """An answer that is not the booking API's (an HTML error page, a proxy's, a wrong JSON shape)."""


def _json_object(resp: httpx.Response, what: str) -> dict:
    try:
        body = resp.json()
    except ValueError:
        kind = resp.headers.get("content-type", "no content type")
        raise _Misrouted(f"{what} answered {resp.status_code} with {kind}, not JSON: "
                         f"{resp.text[:120]!r}") from None
    if not isinstance(body, dict):
        raise _Misrouted(f"{what} answered a JSON {type(body).__name__}, not an object")
    return body


def served_version(http: _Http) -> tuple[str | None, str]:
    """(the version /version reports, or None; why not)."""
    resp, _, err = http.request("GET", "/version")
    if resp is None or resp.status_code != 200:
        return None, err
    try:
        version = _json_object(resp, "/version").get("version")
    except _Misrouted as exc:
        return None, str(exc)
    return (version, "") if isinstance(version, str) else (None, f"/version has no version string: {version!r}")


def check_version(http: _Http, tag: str, timeout: float) -> Check:
    deadline = time.monotonic() + timeout
    while True:
        seen, err = served_version(http)
        if seen == tag:
            return Check("version", True, f"serves {tag}")
        if time.monotonic() >= deadline:
            return Check("version", False, f"serves {seen!r}, expected {tag!r} (waited {timeout:.0f}s for the "
                                           f"rollout){'; ' + err if err else ''}", {"served": str(seen)})
        time.sleep(min(1.0, max(0.1, timeout / 20)))


def check_health(http: _Http, paths: list[str]) -> Check:
    bad = []
    for path in paths:
        resp, _, err = http.request("GET", path)
        if resp is None or resp.status_code != 200:
            bad.append(err or f"{path}: {resp.status_code if resp is not None else 'no answer'}")
    return Check("health", not bad, f"{len(paths)} endpoint(s) healthy" if not bad else "; ".join(bad))


SMOKE_CUSTOMER = "synthetic-monitor@ops.invalid"  # one stable customer: smoke runs add no customer rows


def smoke_flow(http: _Http, tenant: str, tag: str) -> tuple[Check, int | None]:
    """services → availability → book → cancel; the booking must be gone afterwards. Returns the service used.

    An answer that is not the API's (HTML, a wrong JSON shape) fails the check with the reason."""
    try:
        return _smoke_flow(http, tenant, tag)
    except (_Misrouted, KeyError, TypeError, IndexError, ValueError) as exc:
        return Check("smoke_flow", False, f"unexpected answer: {type(exc).__name__}: {exc}"), None


def _smoke_flow(http: _Http, tenant: str, tag: str) -> tuple[Check, int | None]:
    base = f"/tenants/{tenant}"

    service = None

    def fail(step: str, err: str) -> tuple[Check, int | None]:
        return Check("smoke_flow", False, f"{step}: {err}"), service

    resp, _, err = http.request("GET", f"{base}/services")
    if resp is None or resp.status_code != 200:
        return fail("list services", err)
    body = _json_object(resp, f"{base}/services")
    if not body.get("services") or not body.get("staff"):
        return fail("list services", "the tenant has no services or staff")
    service, staff = body["services"][0]["id"], body["staff"][0]["id"]
    day = date.today() + timedelta(days=400)
    day += timedelta(days=(7 - day.weekday()) % 7)  # a Monday, far enough ahead to be free
    resp, _, err = http.request("GET", f"{base}/availability",
                                params={"date": day.isoformat(), "service_id": service, "staff_id": staff})
    if resp is None or resp.status_code != 200:
        return fail("availability", err)
    slots = _json_object(resp, f"{base}/availability").get("slots") or []
    if not slots:
        return fail("availability", f"no free slot on {day} for staff {staff}")
    # Different releases validated at once pick different slots; a POST is never retried (not idempotent).
    slot = slots[int(hashlib.sha256(tag.encode()).hexdigest(), 16) % len(slots)]
    resp, _, err = http.request("POST", f"{base}/bookings", ok=(201,), retries=0, json={
        "service_id": service, "staff_id": staff, "starts_at": slot["starts_at"], "customer_email": SMOKE_CUSTOMER})
    if resp is None or resp.status_code != 201:
        return fail("book", err)
    booking = _json_object(resp, f"{base}/bookings")["id"]
    resp, _, err = http.request("DELETE", f"{base}/bookings/{booking}")
    if resp is None or resp.status_code != 200:
        return fail("cancel", f"{err} (booking {booking} may be left behind)")
    resp, _, _ = http.request("GET", f"{base}/bookings/{booking}", ok=(404,))
    if resp is None or resp.status_code != 404:
        return fail("clean-up", f"booking {booking} still exists after cancelling")
    return Check("smoke_flow", True, f"booked and cancelled {booking} at {slot['starts_at']}; nothing left "
                                     f"behind"), service


def latency(http: _Http, target: ReleaseTarget, service: int | None
            ) -> tuple[Check, dict[str, float], float, dict[str, list[float]]]:
    """p95 and error rate per endpoint, after ``warmup_requests`` that are not counted (cold caches, connection
    set-up); every failed attempt of the measured requests counts, even when a retry then passes."""
    day = (date.today() + timedelta(days=30)).isoformat()
    endpoints = [*target.health_paths, "/version", f"/tenants/{target.smoke_tenant}/services"]
    if service is not None:  # the service the smoke flow found: a real one of this tenant
        endpoints.append(f"/tenants/{target.smoke_tenant}/availability?date={day}&service_id={service}")
    for path in endpoints:
        for _ in range(target.warmup_requests):
            http.request("GET", path, retries=0)
    before_attempts, before_failures = http.attempts, http.failures
    results: dict[str, float] = {}
    samples_by_path: dict[str, list[float]] = {}
    for path in endpoints:
        samples = []
        for _ in range(target.requests_per_endpoint):
            _resp, ms, _ = http.request("GET", path)
            samples.append(ms)
        results[path] = round(p95(samples), 2)
        samples_by_path[path] = [round(ms, 2) for ms in samples]
    attempts = http.attempts - before_attempts
    failures = http.failures - before_failures
    rate = failures / attempts if attempts else 0.0
    slow = [f"{p} p95 {ms:.0f} ms" for p, ms in results.items() if ms > target.latency_budget_ms]
    ok = not slow and rate <= target.max_error_rate
    msg = (f"p95 within {target.latency_budget_ms} ms on {len(results)} endpoints, error rate {rate:.2%}" if ok else
           "; ".join([*(f"{s} > budget {target.latency_budget_ms} ms" for s in slow),
                      *([f"error rate {rate:.2%} > {target.max_error_rate:.2%} ({failures}/{attempts} attempts)"]
                        if rate > target.max_error_rate else [])]))
    return Check("latency_budget", ok, msg, {"error_rate": round(rate, 4), "attempts": attempts,
                                             "failed_attempts": failures}), results, rate, samples_by_path


def regression(samples_now: dict[str, list[float]], previous: tuple[str, dict[str, float]] | None,
               target: ReleaseTarget, previous_samples: dict[str, list[float]] | None = None) -> Check:
    """Slower than the last good release, by the statistics of ``compare`` (Mann-Whitney U, factor, floor)."""
    if previous is None:
        return Check("regression", True, "no earlier release passed: nothing to compare with")
    prev_tag, prev = previous
    results = [compare(path, now, (previous_samples or {}).get(path), prev[path],
                       factor=target.p95_regression_factor, floor_ms=target.regression_floor_ms,
                       alpha=target.regression_alpha)
               for path, now in samples_now.items() if path in prev]
    worse = [f"{r.endpoint}: {r.reason}" for r in results if r.regressed]
    return Check("regression", not worse,
                 f"no endpoint slower than {prev_tag} beyond {target.p95_regression_factor}× and "
                 f"{target.regression_floor_ms:.0f} ms with significance {target.regression_alpha}" if not worse else
                 f"slower than {prev_tag}: " + "; ".join(worse), {"compared_with": prev_tag})


def validate(tag: str, target: ReleaseTarget, *, previous: tuple[str, dict[str, float]] | None = None,
             previous_samples: dict[str, list[float]] | None = None,
             rollback_command: list[str] | None = None, rollback_env: Iterable[str] = (),
             rollback_timeout: float = 600, secrets: Iterable[str] = ()) -> Verdict:
    http = _Http(target)
    try:
        version = check_version(http, tag, target.rollout_timeout_seconds)
        if version.passed:
            smoke, service = smoke_flow(http, target.smoke_tenant, tag)
        else:  # never book on a release that is not the one being validated
            smoke, service = Check("smoke_flow", False, "skipped: the service does not serve this release, so no "
                                                        "booking was made on it"), None
        checks = [version, check_health(http, target.health_paths), smoke]
        lat, p95s, rate, samples = latency(http, target, service)
        checks += [lat, regression(samples, previous, target, previous_samples)]
        verdict = Verdict(tag, checks, p95s, rate, samples_ms=samples)
        if not verdict.passed:
            verdict.rollback = _roll_back(http, tag, version.passed, previous, rollback_command,
                                          timeout=rollback_timeout, env_names=rollback_env, secrets=secrets)
    finally:
        http.close()
    return verdict


def _skipped(to: str | None, reason: str, *, deployed: bool = True) -> dict:
    return {"to": to, "exit_code": None, "timed_out": False, "skipped": True, "reason": reason,
            "deployed": deployed, "output": f"not rolled back: {reason}"}


def _roll_back(http: _Http, tag: str, deployed: bool, previous: tuple[str, dict] | None,
               command: list[str] | None, *, timeout: float, env_names: Iterable[str],
               secrets: Iterable[str]) -> dict:
    """The rollback decision for a failed release, always recorded (the alert says what happened).

    Roll back only a release that is deployed and broken, and only if it still is: the service is asked
    again right before, so a newer release deployed meanwhile is never undone."""
    to = previous[0] if previous else None
    if not deployed:
        served, why = served_version(http)
        if served is None:  # no answer: the failed release may be the one that stopped answering
            return _skipped(to, f"the service does not answer /version ({why or 'no answer'}), so whether {tag} is "
                                f"live is unknown; not rolled back blind", deployed=True)
        return _skipped(to, f"the service serves {served!r}, not {tag}, so there is nothing of this release to roll "
                            f"back", deployed=False)
    if not command:
        return _skipped(to, "no releases.rollback_command is configured")
    if previous is None:
        return _skipped(None, "no earlier release passed validation, so there is nothing to roll back to")
    still, why = served_version(http)
    if still is None:
        return _skipped(to, f"the service stopped answering /version ({why or 'no answer'}) right before the "
                            f"rollback; not rolled back blind", deployed=True)
    if still != tag:
        return _skipped(to, f"the service now serves {still!r}, not {tag!r}{'; ' + why if why else ''}",
                        deployed=False)
    return rollback(command, to, timeout=timeout, env_names=env_names, secrets=secrets)
