"""The web console's guard (issue 22), over HTTP: sign-in only with a developer pair; the session cookie's flags,
renewal and sign-out; every change refused without the session's CSRF token or from another site, with nothing
done; an identity's credentials (as a sign-in pair or as a SigV4 signature) open nothing; the console's headers;
and the pages themselves reading what the API wrote. The same flows in a real browser: test_console_browser.py."""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from redis.asyncio import Redis

from syncsvc import rediskeys
from syncsvc.api.app import create_app
from syncsvc.api.messages import SERVICES
from syncsvc.config import Settings
from syncsvc.runtime import report
from syncsvc.store.console import session_key
from syncsvc.store.instances import FORGET_SECONDS, INSTANCES
from syncsvc.triggers import LambdaContext, TriggerRegistry
from tests.conftest import DEVELOPER_KEY, DEVELOPER_SECRET, REGION, Boto, call, free_port, make_settings, serving
from tests.devices import Devices, guest
from tests.kms_calls import kms_client
from tests.phones import notification, push_pool, receive, subscribed_pair
from tests.streams import LANES, SHARDS, create_topic, read_topic, serving_with_relay, streaming_pool

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Browser:
    """A cookie-keeping HTTP client of the console, as a browser without scripts would use it."""

    def __init__(self, endpoint: str, session: aiohttp.ClientSession) -> None:
        self.endpoint = endpoint
        self.session = session

    async def get(self, path: str, **headers: str) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.session.get(self.endpoint + path, headers=headers, allow_redirects=False) as response:
            return response.status, await response.text(), response

    async def post(self, path: str, form: dict[str, str], **headers: str) -> tuple[int, str, aiohttp.ClientResponse]:
        async with self.session.post(
            self.endpoint + path, data=form, headers=headers, allow_redirects=False
        ) as response:
            return response.status, await response.text(), response

    async def sign_in(self, key: str = DEVELOPER_KEY, secret: str = DEVELOPER_SECRET) -> int:
        status, _, _ = await self.post("/console/signin", {"access_key_id": key, "secret": secret})
        return status

    async def csrf(self, path: str = "/console/pools") -> str:
        status, text, _ = await self.get(path)
        assert status == 200, text
        found = CSRF.search(text)
        assert found is not None
        return found.group(1)


@pytest.fixture
async def browser(endpoint: str) -> AsyncIterator[Browser]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield Browser(endpoint, session)


async def test_pages_send_a_stranger_to_sign_in(browser: Browser) -> None:
    for path in ("/console", "/console/", "/console/pools", "/console/identities", "/console/nowhere"):
        status, _, response = await browser.get(path)
        assert (status, response.headers["Location"]) == (303, "/console/signin")
    status, text, response = await browser.get("/console/signin")
    assert status == 200
    assert 'type="password"' in text
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_a_path_no_page_has_shows_a_console_page_saying_so(browser: Browser) -> None:
    assert await browser.sign_in() == 303
    status, text, response = await browser.get("/console/")
    assert (status, response.headers["Location"]) == (303, "/console/pools")
    status, text, response = await browser.get("/console/nowhere/<b>")
    assert (status, response.content_type) == (404, "text/html")
    assert "There is no console page at /console/nowhere/&lt;b&gt;." in text
    status, text, response = await browser.get("/console/static/favicon.svg")  # the icon every page links to
    assert (status, response.content_type) == (200, "image/svg+xml")
    assert '<link rel="icon" href="/console/static/favicon.svg"' in (await browser.get("/console/pools"))[1]


async def test_a_developer_pair_signs_in_with_a_guarded_cookie_and_signing_out_ends_it(
    browser: Browser, redis_client: Redis
) -> None:
    status, _, response = await browser.post(
        "/console/signin", {"access_key_id": DEVELOPER_KEY, "secret": DEVELOPER_SECRET}
    )
    assert (status, response.headers["Location"]) == (303, "/console/pools")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/console" in cookie
    token = response.cookies["syncsvc_console"].value
    assert token not in str(await redis_client.keys(f"{rediskeys.PREFIX}:console:*"))  # only its digest is stored
    assert (await browser.get("/console/pools"))[0] == 200
    status, _, _ = await browser.post("/console/signout", {"csrf": await browser.csrf()})
    assert status == 303
    assert (await browser.get("/console/pools"))[0] == 303
    # the old cookie, replayed, opens nothing either
    browser.session.cookie_jar.update_cookies({"syncsvc_console": token})
    assert (await browser.get("/console/pools"))[0] == 303


async def test_a_wrong_pair_and_an_identitys_credentials_sign_no_one_in(
    browser: Browser, boto: Boto, devices: Devices
) -> None:
    assert await browser.sign_in(DEVELOPER_KEY, DEVELOPER_SECRET + "x") == 401
    assert await browser.sign_in("AKIDNOTADEVELOPER", DEVELOPER_SECRET) == 401
    pool = await boto.new_pool()
    _, credentials = await guest(devices, pool)
    assert await browser.sign_in(credentials["AccessKeyId"], credentials["SecretKey"]) == 401
    assert (await browser.get("/console/pools"))[0] == 303


async def test_an_identitys_signature_opens_no_page(endpoint: str, boto: Boto, devices: Devices) -> None:
    pool = await boto.new_pool()
    _, credentials = await guest(devices, pool)
    signer = BotoCredentials(credentials["AccessKeyId"], credentials["SecretKey"], credentials["SessionToken"])
    request = AWSRequest(method="GET", url=endpoint + "/console/pools")
    SigV4Auth(signer, "cognito-identity", REGION).add_auth(request)
    async with (
        aiohttp.ClientSession() as session,
        session.get(endpoint + "/console/pools", headers=dict(request.headers), allow_redirects=False) as response,
    ):
        assert response.status == 303
        assert response.headers["Location"] == "/console/signin"


async def test_a_change_without_the_csrf_token_or_from_another_site_is_refused_and_does_nothing(
    browser: Browser, boto: Boto
) -> None:
    assert await browser.sign_in() == 303
    token = await browser.csrf()
    name = f"csrf{uuid.uuid4().hex[:8]}"
    for form, headers in (
        ({"name": name}, {}),
        ({"name": name, "csrf": token[:-1] + ("A" if token[-1] != "A" else "B")}, {}),
        ({"name": name, "csrf": token}, {"Origin": "https://evil.example"}),
        ({"name": name, "csrf": token}, {"Sec-Fetch-Site": "cross-site"}),
    ):
        status, text, _ = await browser.post("/console/pools", form, **headers)
        assert status == 403, (form, headers)
        assert "nothing was done" in text
    pools = await call(boto.identity, "list_identity_pools", MaxResults=60)
    assert name not in {pool["IdentityPoolName"] for pool in pools["IdentityPools"]}
    # the same form with its token creates the pool
    status, _, response = await browser.post("/console/pools", {"name": name, "csrf": token})
    assert status == 303
    pool_id = response.headers["Location"].removeprefix("/console/pools/").split("?")[0]
    described = await call(boto.identity, "describe_identity_pool", IdentityPoolId=pool_id)
    assert described["IdentityPoolName"] == name


#: Bodies no browser sends for the console's forms: (Content-Type, body).
UNREADABLE_FORMS = [
    ("application/x-www-form-urlencoded", b"name=\xff\xfe&csrf=\xff"),
    ("application/x-www-form-urlencoded; charset=no-such-charset", b"name=a"),
    ("application/x-www-form-urlencoded; charset=utf-16", b"a=b"),  # an odd count of bytes
    ("multipart/form-data", b"--b\r\n"),
    ("multipart/form-data; boundary=b", b"no boundary in here"),
    ("multipart/form-data; boundary=b", b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\n\xff\r\n--b--\r\n'),
    # well formed, but no page of the console sends multipart (nor JSON): not parsed
    ("multipart/form-data; boundary=b", b'--b\r\nContent-Disposition: form-data; name="name"\r\n\r\nn\r\n--b--\r\n'),
    ("application/json", b'{"name": "n"}'),
]


async def test_a_form_no_browser_would_send_gets_a_400_and_changes_nothing(browser: Browser, boto: Boto) -> None:
    async def unreadable_everywhere(path: str) -> None:
        for content_type, body in UNREADABLE_FORMS:
            headers = {"Content-Type": content_type}
            async with browser.session.post(browser.endpoint + path, data=body, headers=headers) as response:
                assert response.status == 400, content_type
                assert "The form could not be read" in await response.text()

    await unreadable_everywhere("/console/signin")
    content_type, body = UNREADABLE_FORMS[0]  # a change without a session is refused before its body is read
    async with browser.session.post(
        browser.endpoint + "/console/pools", data=body, headers={"Content-Type": content_type}
    ) as response:
        assert response.status == 403
        assert "You are not signed in to the console" in await response.text()
    assert await browser.sign_in() == 303
    before = await call(boto.identity, "list_identity_pools", MaxResults=60)
    await unreadable_everywhere("/console/pools")
    assert await call(boto.identity, "list_identity_pools", MaxResults=60) == before


async def test_no_console_route_answers_odd_paths_queries_or_forms_with_a_server_error(
    browser: Browser, boto: Boto, server: TestServer
) -> None:
    """Every route of the console, signed in and with a valid CSRF token (so each request reaches its handler), with
    odd path values, queries and form fields: a page or a refusal, never a 5xx."""
    assert await browser.sign_in() == 303
    pool = await boto.new_pool()
    csrf = await browser.csrf()
    odd = [
        pool,
        "x",
        "us-east-1:x",
        f"us-east-1:{uuid.uuid4()}",
        "%00",
        "a" * 3000,
        "%C3%A9",
        "..%2F..",
        "%FF",
        "%3Cb%3E",
    ]
    queries: list[dict[str, str]] = [
        {},
        {"pool": "x", "identity": "%", "next": "junk", "fragment": "1", "note": "?"},
        {"pool": "a" * 5000, "provider": "a" * 3000, "subject": "\x00"},
    ]
    forms: list[dict[str, str]] = [
        {"csrf": csrf},
        {
            "csrf": csrf,
            "name": "a" * 5000,
            "topic": "\x00",
            "enabled": "on",
            "role": "x",
            "providers": "a=b\n=\n\x00=1",
        },
        {"csrf": csrf, "SyncTrigger": "no-such-trigger", "guests": "on", "providers": "x" * 100_000},
    ]
    failures: list[tuple[str, str, object, int]] = []
    for route in server.app.router.routes():
        resource = route.resource
        if resource is None or not resource.canonical.startswith("/console") or route.method == "HEAD":
            continue
        for value in odd:
            path = re.sub(r"\{[^}]+\}", value, resource.canonical)
            if route.method == "GET":
                for query in queries:
                    async with browser.session.get(browser.endpoint + path, params=query, allow_redirects=False) as got:
                        if got.status >= 500:
                            failures.append((route.method, path[:60], query, got.status))
            else:
                for form in forms[:-1] if "delete" in path else forms:  # the pool itself is deleted last
                    async with browser.session.post(browser.endpoint + path, data=form, allow_redirects=False) as got:
                        if got.status >= 500:
                            failures.append((route.method, path[:60], sorted(form), got.status))
            if "{" not in resource.canonical:
                break  # a path without values: once is enough
    assert failures == []


async def test_a_refused_setting_shows_the_apis_error_and_changes_nothing(browser: Browser, boto: Boto) -> None:
    assert await browser.sign_in() == 303
    pool = await boto.new_pool()
    form = {"csrf": await browser.csrf(), "topic": "bad topic name!", "enabled": "on"}
    status, text, _ = await browser.post(f"/console/pools/{pool}/streams", form)
    assert status == 400
    assert "InvalidParameterException" in text
    configuration = await call(boto.sync, "get_identity_pool_configuration", IdentityPoolId=pool)
    assert "CognitoStreams" not in configuration or configuration["CognitoStreams"].get("StreamingStatus") != "ENABLED"


async def test_the_dataset_page_shows_records_written_through_the_api_escaped(
    browser: Browser, boto: Boto, devices: Devices
) -> None:
    assert await browser.sign_in() == 303
    pool = await boto.new_pool()
    identity, credentials = await guest(devices, pool)
    client = devices.sync_with(credentials)
    names = {"IdentityPoolId": pool, "IdentityId": identity, "DatasetName": "profile"}
    token = (await call(client, "list_records", **names))["SyncSessionToken"]
    patches = [
        {"Op": "replace", "Key": "theme", "Value": "dark", "SyncCount": 0},
        {"Op": "replace", "Key": "bio", "Value": "<script>alert(1)</script>", "SyncCount": 0},
    ]
    await call(client, "update_records", **names, SyncSessionToken=token, RecordPatches=patches)
    status, text, _ = await browser.get(f"/console/identities/{identity}/datasets/profile")
    assert status == 200
    assert "dark" in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "<script>alert(1)" not in text
    status, fragment, _ = await browser.get(f"/console/identities/{identity}/datasets/profile?fragment=1")
    assert status == 200
    assert 'data-version="1"' in fragment


async def test_a_session_expires_when_idle(browser: Browser, redis_client: Redis) -> None:
    assert await browser.sign_in() == 303
    (cookie,) = [cookie for cookie in browser.session.cookie_jar if cookie.key == "syncsvc_console"]
    key = session_key(hashlib.sha256(cookie.value.encode()).hexdigest())
    assert 0 < await redis_client.pttl(key) <= 3600 * 1000  # SYNCSVC_CONSOLE_SESSION_SECONDS
    assert (await browser.get("/console/pools"))[0] == 200
    await redis_client.delete(key)  # as if the hour had passed without a request
    assert (await browser.get("/console/pools"))[0] == 303


async def test_the_console_can_be_turned_off(redis_url: str, redis_client: Redis) -> None:
    async with serving(make_settings(redis_url, console=False)) as endpoint, aiohttp.ClientSession() as session:
        for path in ("/console", "/console/signin", "/console/static/console.css"):
            async with session.get(endpoint + path, allow_redirects=False) as response:
                assert response.status == 404, path


async def test_the_streams_page_shows_every_relay_lane_and_feeds_its_chart(
    browser: Browser, settings: Settings
) -> None:
    assert await browser.sign_in() == 303
    status, text, _ = await browser.get("/console/streams")
    assert status == 200
    assert text.count("<tr><td>") >= settings.relay_lanes
    async with browser.session.get(browser.endpoint + "/console/streams/lanes.json") as response:
        assert response.status == 200
        lanes = (await response.json())["lanes"]
    assert [lane["lane"] for lane in lanes] == list(range(settings.relay_lanes))
    assert all(lane["backlog"] >= 0 and lane["behind_seconds"] >= 0 for lane in lanes)
    lanes_url = browser.endpoint + "/console/streams/lanes.json"
    async with aiohttp.ClientSession() as stranger, stranger.get(lanes_url, allow_redirects=False) as response:
        assert response.status == 303  # its data needs a session too


async def test_the_push_page_shows_this_instance_and_the_notifications_it_delivered(
    browser: Browser, boto: Boto, server: TestServer
) -> None:
    assert await browser.sign_in() == 303
    async with aiohttp.ClientSession() as session:
        phone, tablet = await subscribed_pair(session, await push_pool(boto), browser.endpoint)
        async with await phone.connect() as socket:
            sync_count = await tablet.write("dark")
            assert await receive(socket) == notification(phone, sync_count)
            status, text, _ = await browser.get("/console/push")
    assert status == 200
    assert server.app[SERVICES].instance_id in text
    assert phone.identity in text
    assert f'data-label="sync count">{sync_count}<' in text


async def test_the_triggers_page_shows_what_is_registered_where_it_is_attached_and_its_calls(
    redis_url: str, redis_client: Redis
) -> None:
    def stamp(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
        return event

    name = f"stamp-{uuid.uuid4().hex[:8]}"
    registry = TriggerRegistry()
    registry.register(name, stamp)
    app = create_app(make_settings(redis_url), triggers=registry)
    test_server = TestServer(app, host="127.0.0.1", port=free_port())
    await test_server.start_server()
    try:
        endpoint = str(test_server.make_url("")).rstrip("/")
        boto = Boto(endpoint)
        pool = await boto.new_pool()
        await call(boto.sync, "set_cognito_events", IdentityPoolId=pool, Events={"SyncTrigger": name})
        identity, credentials = await guest(Devices(endpoint), pool)
        client = Devices(endpoint).sync_with(credentials)
        names = {"IdentityPoolId": pool, "IdentityId": identity, "DatasetName": "d"}
        token = (await call(client, "list_records", **names))["SyncSessionToken"]
        patch = {"Op": "replace", "Key": "k", "Value": "v", "SyncCount": 0}
        await call(client, "update_records", **names, SyncSessionToken=token, RecordPatches=[patch])
        async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
            browser = Browser(endpoint, session)
            assert await browser.sign_in() == 303
            status, text, _ = await browser.get("/console/triggers")
    finally:
        await test_server.close()
    assert status == 200
    row = text[text.index(f"<b>{name}</b>") :]
    assert pool in row.split("</tr>")[0]  # attached to the pool, by its SyncTrigger
    calls = text[text.index('id="calls"') :]
    assert f"<td>{name}</td>" in calls
    assert 'class="ok">ok<' in calls


async def test_the_kms_page_shows_each_keys_state_rotation_deletion_and_aliases(browser: Browser) -> None:
    assert await browser.sign_in() == 303
    kms = kms_client(browser.endpoint)
    rotating = (await call(kms, "create_key", Description="rotates"))["KeyMetadata"]["KeyId"]
    await call(kms, "enable_key_rotation", KeyId=rotating)
    alias = f"alias/console-{uuid.uuid4().hex[:8]}"
    await call(kms, "create_alias", AliasName=alias, TargetKeyId=rotating)
    doomed = (await call(kms, "create_key", Description="doomed"))["KeyMetadata"]["KeyId"]
    await call(kms, "schedule_key_deletion", KeyId=doomed, PendingWindowInDays=7)
    status, text, _ = await browser.get("/console/keys")
    assert status == 200
    rows = {key: text[text.index(f"<code>{key}</code>") :].split("</tr>")[0] for key in (rotating, doomed)}
    assert alias in rows[rotating]
    assert "automatic" in rows[rotating]
    assert "Enabled" in rows[rotating]
    assert "PendingDeletion" in rows[doomed]
    assert "deleted " in rows[doomed]
    status, text, _ = await browser.get(f"/console/keys/{rotating}")
    assert status == 200
    assert "SYMMETRIC_DEFAULT" in text


@pytest.mark.timeout(120)  # a fresh broker takes a while to elect its transaction coordinator
async def test_the_streams_page_shows_a_pools_latest_changes_from_its_topic(
    redis_url: str, warm_kafka: str, redis_client: Redis
) -> None:
    run = uuid.uuid4().hex[:8]
    async with (
        serving_with_relay(redis_url, warm_kafka, run=run, shards=SHARDS, relay_lanes=LANES) as endpoint,
        aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session,
    ):
        boto, topic = Boto(endpoint), f"console-{run}"
        await create_topic(warm_kafka, topic)
        pool = await streaming_pool(boto, topic)
        other = await streaming_pool(boto, topic)  # a pool sharing the topic: never shown with the first
        for written, value in ((pool, "mine"), (other, "theirs")):
            names = {"IdentityPoolId": written, "IdentityId": f"us-east-1:{uuid.uuid4()}", "DatasetName": "d"}
            token = (await call(boto.sync, "list_records", **names))["SyncSessionToken"]
            patch = {"Op": "replace", "Key": "k", "Value": value, "SyncCount": 0}
            await call(boto.sync, "update_records", **names, SyncSessionToken=token, RecordPatches=[patch])
        assert len(await read_topic(warm_kafka, topic, 2)) == 2
        browser = Browser(endpoint, session)
        assert await browser.sign_in() == 303
        status, page, _ = await browser.get(f"/console/streams?pool={pool}")
        assert status == 200
        assert f'data-live="/console/streams/changes?pool={pool.replace(":", "%3A")}"' in page
        assert page.count("data-live=") == 1
        assert "<title>Streams · syncsvc console</title>" in page
        status, fragment, _ = await browser.get(f"/console/streams/changes?pool={pool}")
    assert status == 200
    assert "= mine" in fragment
    assert "theirs" not in fragment


async def test_an_instance_report_drops_the_records_of_instances_long_silent(
    server: TestServer, redis_client: Redis
) -> None:
    services = server.app[SERVICES]
    now = time.time()
    await redis_client.hset(INSTANCES, "gone-long-ago", orjson.dumps({"at": now - FORGET_SECONDS - 60}))
    await redis_client.hset(INSTANCES, "gone-lately", orjson.dumps({"at": now - 120}))
    await report(services)
    assert set(await redis_client.hkeys(INSTANCES)) == {b"gone-lately", services.instance_id.encode()}
