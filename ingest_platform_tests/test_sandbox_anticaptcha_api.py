"""The Anti-Captcha stand-in, driven by the real python-anticaptcha client, and the site accepting
the tokens it issues (the shared CaptchaRegistry)."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
from python_anticaptcha import (
    AnticaptchaClient,
    AnticaptchaException,
    HCaptchaTaskProxyless,
    ImageToTextTask,
    NoCaptchaTaskProxylessTask,
)

from ingest_platform.sandbox.anticaptcha_api import DEFAULT_CLIENT_KEY, AntiCaptchaConfig, AntiCaptchaServer
from ingest_platform.sandbox.captcha_registry import CaptchaRegistry, render_digits_png
from ingest_platform.sandbox.stack import SandboxStack
from ingest_platform.sandbox.tiktok_site import SiteScenario

_SITEKEY = SiteScenario().recaptcha_sitekey


@pytest.fixture(autouse=True)
def fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    # Job.join() sleeps this module constant between polls (3 s in the library).
    monkeypatch.setattr("python_anticaptcha.sync_client.SLEEP_EVERY_CHECK_FINISHED", 0.05)


@pytest.fixture
def service() -> Iterator[AntiCaptchaServer]:
    with AntiCaptchaServer(AntiCaptchaConfig(solve_delay_s=0.15, balance=1.0)) as running:
        yield running


def client_for(server: AntiCaptchaServer, key: str | None = None) -> AnticaptchaClient:
    return AnticaptchaClient(key or server.client_key, host=server.host_port, use_ssl=False)


def post(server: AntiCaptchaServer, method: str, payload: object) -> dict[str, object]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    request = urllib.request.Request(
        server.url(f"/{method}"), data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200  # the real API answers errors with HTTP 200 too
        return json.loads(response.read())


def test_recaptcha_and_hcaptcha_are_solved_with_the_real_client(service: AntiCaptchaServer) -> None:
    client = client_for(service)
    assert service.host_port.startswith("127.0.0.1:") and service.client_key == DEFAULT_CLIENT_KEY
    job = client.createTask(NoCaptchaTaskProxylessTask("http://127.0.0.1/@someone", _SITEKEY))
    assert client.getTaskResult(job.task_id)["status"] == "processing"  # solve_delay_s not over yet
    polls: list[str | None] = []
    job.join(maximum_time=10, on_check=lambda elapsed, status: polls.append(status))
    assert polls and set(polls) == {"processing"}
    token = job.get_solution_response()
    assert token.startswith("03A") and len(token) > 100
    assert service.registry.redeem_token(token, kind="recaptcha", sitekey=_SITEKEY)
    assert not service.registry.redeem_token(token, kind="recaptcha", sitekey=_SITEKEY)  # single use
    result = client.getTaskResult(job.task_id)
    assert (
        result["cost"] == "0.00200"
        and result["solveCount"] == 1
        and result["endTime"] >= result["createTime"]
    )

    job = client.createTask(HCaptchaTaskProxyless("http://127.0.0.1/", "site-h"))
    job.join(maximum_time=10)
    assert service.registry.redeem_token(job.get_solution_response(), kind="hcaptcha", sitekey="site-h")
    assert job.get_token_response() == job.get_solution_response()
    stats = service.stats()
    assert stats["tasks_created"] == 2 and stats["tasks_solved"] == 2 and stats["tasks_failed"] == 0
    assert stats["by_type"] == {"NoCaptchaTaskProxyless": 1, "HCaptchaTaskProxyless": 1}


def test_image_to_text_reads_the_images_the_sandbox_drew(service: AntiCaptchaServer) -> None:
    client = client_for(service)
    png, answer = service.registry.new_image("test-client")
    job = client.createTask(ImageToTextTask(png))
    job.join(maximum_time=10)
    assert job.get_captcha_text() == answer
    # A picture the sandbox never drew: no worker can read it.
    job = client.createTask(ImageToTextTask(render_digits_png("12345", noise_seed="elsewhere")))
    with pytest.raises(AnticaptchaException) as caught:
        job.join(maximum_time=10)
    assert (caught.value.error_id, caught.value.error_code) == (12, "ERROR_CAPTCHA_UNSOLVABLE")


def test_unsolvable_and_wrong_solutions_and_reports(service: AntiCaptchaServer) -> None:
    client = client_for(service)
    service.config.solve_delay_s = 0.0
    service.config.unsolvable_rate = 1.0
    job = client.createTask(NoCaptchaTaskProxylessTask("http://127.0.0.1/", _SITEKEY))
    with pytest.raises(AnticaptchaException) as caught:
        job.join(maximum_time=10)
    assert caught.value.error_id == 12 and caught.value.error_code == "ERROR_CAPTCHA_UNSOLVABLE"
    with pytest.raises(AnticaptchaException, match="ERROR_NO_SUCH_CAPCHA_ID"):
        job.report_incorrect_recaptcha()  # nothing was solved, nothing to report

    service.config.unsolvable_rate = 0.0
    service.config.wrong_solution_rate = 1.0
    job = client.createTask(NoCaptchaTaskProxylessTask("http://127.0.0.1/", _SITEKEY))
    job.join(maximum_time=10)
    assert not service.registry.redeem_token(job.get_solution_response(), kind="recaptcha", sitekey=_SITEKEY)
    assert job.report_incorrect_recaptcha() is True

    png, answer = service.registry.new_image("client")
    job = client.createTask(ImageToTextTask(png))
    job.join(maximum_time=10)
    assert job.get_captcha_text() != answer
    assert job.report_incorrect_image() is True
    stats = service.stats()
    assert stats["tasks_failed"] == 1 and stats["wrong_solutions"] == 2
    assert stats["reports"] == 2 and stats["reports_recaptcha"] == 1 and stats["reports_image"] == 1
    assert stats["reports_of_wrong_solutions"] == 2
    assert [r["kind"] for r in service.state.reports] == ["recaptcha", "image"]


def test_balance_and_cost_accounting(service: AntiCaptchaServer) -> None:
    client = client_for(service)
    service.config.solve_delay_s = 0.0
    assert client.getBalance() == 1.0
    service.config.unsolvable_rate = 0.5
    jobs = [client.createTask(NoCaptchaTaskProxylessTask("http://127.0.0.1/", _SITEKEY)) for _ in range(10)]
    failed = 0
    for job in jobs:
        try:
            job.join(maximum_time=10)
        except AnticaptchaException:
            failed += 1
    assert 0 < failed < 10
    # Every task is paid for, unsolvable ones included (as the real service bills them).
    assert client.getBalance() == pytest.approx(1.0 - 10 * 0.002)
    stats = service.stats()
    assert stats["spent"] == pytest.approx(0.02) and stats["tasks_failed"] == failed
    assert stats["tasks_solved"] == 10 - failed


def test_zero_balance_bad_key_and_unknown_task() -> None:
    config = AntiCaptchaConfig(balance=0.003, cost_per_task=0.002)
    with AntiCaptchaServer(config) as server:
        client = client_for(server)
        client.createTask(NoCaptchaTaskProxylessTask("http://127.0.0.1/", _SITEKEY)).join(maximum_time=10)
        with pytest.raises(AnticaptchaException) as caught:
            client.createTask(NoCaptchaTaskProxylessTask("http://127.0.0.1/", _SITEKEY))
        assert (caught.value.error_id, caught.value.error_code) == (10, "ERROR_ZERO_BALANCE")
        assert client.getBalance() == pytest.approx(0.001)

        stranger = client_for(server, key="not-a-key")
        for call in (stranger.getBalance, lambda: stranger.getTaskResult(1)):
            with pytest.raises(AnticaptchaException) as caught:
                call()
            assert (caught.value.error_id, caught.value.error_code) == (1, "ERROR_KEY_DOES_NOT_EXIST")
        with pytest.raises(AnticaptchaException) as caught:
            client.getTaskResult(123)
        assert (caught.value.error_id, caught.value.error_code) == (16, "ERROR_NO_SUCH_CAPCHA_ID")


def test_malformed_requests_get_documented_errors_never_11() -> None:
    with AntiCaptchaServer(AntiCaptchaConfig(balance=0.0)) as server:
        key = server.client_key
        answers = {
            "no json": post(server, "createTask", b"{not json"),
            "unknown method": post(server, "solveEverything", {"clientKey": key}),
            "no task": post(server, "createTask", {"clientKey": key}),
            "unsupported": post(
                server, "createTask", {"clientKey": key, "task": {"type": "TikTokSliderTask"}}
            ),
            "no sitekey": post(
                server, "createTask", {"clientKey": key, "task": {"type": "NoCaptchaTaskProxyless"}}
            ),
            "tiny image": post(
                server, "createTask", {"clientKey": key, "task": {"type": "ImageToTextTask", "body": "aGk="}}
            ),
            "no money": post(
                server,
                "createTask",
                {
                    "clientKey": key,
                    "task": {"type": "HCaptchaTaskProxyless", "websiteURL": "u", "websiteKey": "k"},
                },
            ),
            "bad task id": post(server, "getTaskResult", {"clientKey": key, "taskId": "x"}),
        }
        codes = {name: answer["errorId"] for name, answer in answers.items()}
        assert codes == {
            "no json": 1,
            "unknown method": 14,
            "no task": 22,
            "unsupported": 23,
            "no sitekey": 24,
            "tiny image": 3,
            "no money": 10,
            "bad task id": 16,
        }
        assert all({"errorCode", "errorDescription"} <= set(answer) for answer in answers.values())
        assert 11 not in codes.values()


def test_outcomes_replay_from_the_seed() -> None:
    def outcomes(seed: int) -> list[str]:
        config = AntiCaptchaConfig(seed=seed, unsolvable_rate=0.3, wrong_solution_rate=0.3)
        registry = CaptchaRegistry()
        with AntiCaptchaServer(config, registry) as server:
            client = client_for(server)
            found = []
            for _ in range(12):
                job = client.createTask(NoCaptchaTaskProxylessTask("http://127.0.0.1/", _SITEKEY))
                try:
                    job.join(maximum_time=10)
                except AnticaptchaException:
                    found.append("unsolvable")
                    continue
                token = job.get_solution_response()
                found.append(
                    "ok" if registry.redeem_token(token, kind="recaptcha", sitekey=_SITEKEY) else "wrong"
                )
            return found

    first = outcomes(1)
    assert first == outcomes(1) and first != outcomes(2)
    assert set(first) == {"ok", "wrong", "unsolvable"}


def test_a_token_from_the_stand_in_passes_the_sites_captcha() -> None:
    scenario = SiteScenario(captcha_rate=1.0)
    with SandboxStack(scenario=scenario, anticaptcha=AntiCaptchaConfig()) as stack:
        env = stack.env()
        assert env["ANTICAPTCHA_HOST"] == f"http://{stack.anticaptcha_host}"
        assert (
            env["ANTICAPTCHA_API_KEY"] == stack.anticaptcha_key and env["TIKTOK_BASE_URL"] == stack.base_url
        )
        path = f"/@{stack.content.profiles[0].unique_id}"
        browser_like = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())  # keeps cookies
        page = browser_like.open(stack.url(path), timeout=10).read().decode()
        sitekey = page.split('<div class="g-recaptcha" data-sitekey="', 1)[1].split('"', 1)[0]
        client = AnticaptchaClient(env["ANTICAPTCHA_API_KEY"], host=stack.anticaptcha_host, use_ssl=False)
        job = client.createTask(NoCaptchaTaskProxylessTask(stack.url(path), sitekey))
        job.join(maximum_time=10)
        form = urllib.parse.urlencode(
            {"return_to": path, "g-recaptcha-response": job.get_solution_response()}
        )
        # The site answers 302 + a captcha_pass cookie; following it lands on the real page.
        with browser_like.open(stack.url("/__captcha/verify"), data=form.encode(), timeout=10) as response:
            assert response.url == stack.url(path)
            assert "__UNIVERSAL_DATA_FOR_REHYDRATION__" in response.read().decode()
        stats = stack.stats()
        assert stats["site"]["totals"]["captcha_solved"] == 1
        assert stats["anticaptcha"]["tasks_solved"] == 1 and stats["captcha_registry"]["tokens_redeemed"] == 1
