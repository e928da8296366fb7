"""deploy/nginx, for real: Debian's nginx with the shipped config (rendered for loopback
ports) in front of three ``python -m gateway serve`` processes (one of them with two
workers), served under the sub-path /zarr.

Shows: a dataset's requests always land on one instance; a repeated chunk comes from
nginx's cache without reaching any gateway; Range, HEAD, conditional requests and CORS
answer as the gateway does without nginx; HTTP/2 on TLS; basic auth; and, last, that
terminating one instance under load loses no request.
"""

from __future__ import annotations

import http.client
import re
import statistics
import subprocess
import threading
import time
from collections import Counter

import h5py
import httpx
import numpy as np
import pytest
import tifffile

import adapters
from tests.deploy.support import (
    DEPLOY,
    GatewayProcess,
    Nginx,
    free_port,
    metric_total,
    require_tool,
    running_nginx,
    start_gateway,
    wait_for,
)

PREFIX = "/zarr"
ORIGIN = "https://viewer.example"
DATASETS = [f"set{i:02d}/cells.tif" for i in range(16)]
CHUNKS = ["0/c/0/0", "0/c/0/1", "0/c/1/0", "0/c/1/1"]
H5 = "volumes/stack.h5"
H5_IMAGE = f"{H5}/raw/volume"
NOISE = "noise/tiles.tif"  # 2x2 tiles of 256x256 uint16 noise, 10-13 bits deep: ~95-120 KB chunks


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    require_tool("nginx")
    root = tmp_path_factory.mktemp("nginx-data")
    for index, name in enumerate(DATASETS):
        (root / name).parent.mkdir(parents=True)
        pixels = (np.arange(256 * 256, dtype=np.uint16) + 1 + index).reshape(256, 256)
        tifffile.imwrite(root / name, pixels, tile=(128, 128), photometric="minisblack", compression="zlib")
    (root / NOISE).parent.mkdir()
    rng = np.random.default_rng(10)
    noise = np.block(
        [
            [rng.integers(1, 2**bits, (256, 256), dtype=np.uint16) for bits in row]
            for row in [[10, 11], [12, 13]]
        ]
    )
    tifffile.imwrite(root / NOISE, noise, tile=(256, 256), photometric="minisblack", compression="zlib")
    (root / H5).parent.mkdir()
    with h5py.File(root / H5, "w") as f:
        f.create_dataset(
            "raw/volume",
            data=np.arange(4 * 64 * 64, dtype=np.uint8).reshape(4, 64, 64) + 1,
            chunks=(1, 64, 64),
        )
    config = root.parent / "gateway.toml"
    config.write_text(
        f'[roots]\nlab = "{root}"\n[server]\nroot_path = "{PREFIX}"\nthreads = 2\naccess_log = "json"\n'
        # nginx on loopback is the proxy whose Host and X-Forwarded-Proto the links follow
        'trusted_proxies = ["127.0.0.1"]\n'
        '[cache]\nchunk_bytes = "16 MiB"\ntile_bytes = "16 MiB"\n'
    )
    gateways: list[GatewayProcess] = []
    try:
        gateways.append(start_gateway(config, "g1"))
        gateways.append(start_gateway(config, "g2"))
        gateways.append(start_gateway(config, "g3", workers=2))
        with running_nginx(tmp_path_factory.mktemp("nginx"), gateways) as nginx:
            yield nginx, gateways
    finally:
        for gateway in gateways:
            gateway.process.stop()


def url(nginx: Nginx, path: str) -> str:
    return f"{nginx.http}{PREFIX}/lab/{path}"


def raw(base: str, method: str, target: str, headers: dict[str, str] | None = None):
    """A request with exactly these headers; (status, header list, body)."""
    host = base.split("//", 1)[1]
    connection = http.client.HTTPConnection(host, timeout=30)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        connection.close()


def header(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name.lower()]


def instance_of(response: httpx.Response) -> str:
    return response.headers["x-gateway-instance"]


def chunk_requests(gateway: GatewayProcess) -> float:
    return metric_total(gateway.metrics(), "gateway_requests_total", kind="chunk")


# -- affinity --------------------------------------------------------------------------


def test_each_dataset_lands_on_one_instance(cluster):
    nginx, _ = cluster
    owners = {}
    with httpx.Client(timeout=30) as client:
        for name in DATASETS:
            paths = ["zarr.json", "0/zarr.json", *CHUNKS, "", "0/c/0/0"]  # "" = the dataset page
            seen = {
                instance_of(client.get(url(nginx, f"{name}/{p}"), headers={"Range": "bytes=0-"}))
                for p in paths
            }
            assert len(seen) == 1, (name, seen)
            owners[name] = seen.pop()
    assert len(set(owners.values())) >= 2, owners  # the hash spreads datasets over instances


def test_datasets_inside_an_hdf5_file_land_with_the_file(cluster):
    nginx, _ = cluster
    paths = [
        f"{H5_IMAGE}/zarr.json",
        f"{H5_IMAGE}/0/c/0/0/0",
        f"{H5}/",
        f"{H5}/zarr.json",
        f"{H5}/raw/zarr.json",
    ]
    with httpx.Client(timeout=30) as client:
        responses = [client.get(url(nginx, p), headers={"Range": "bytes=0-"}) for p in paths]
    assert [r.status_code for r in responses] == [206, 206, 200, 206, 206]
    assert len({instance_of(r) for r in responses}) == 1


def test_the_views_of_a_file_land_with_it(cluster):
    """The browsing and Zarr v2 views of a file (``/browse/<root>/...``, ``/v2/<root>/...``)
    hash on the file too: the instance that has it open serves them from its tiles."""
    nginx, _ = cluster
    base = f"{nginx.http}{PREFIX}"
    paths = [
        f"lab/{H5}/zarr.json",
        f"browse/lab/{H5}/zarr.json",
        f"browse/lab/{H5_IMAGE}/0/c/0/0/0",
        f"v2/lab/{H5}/.zgroup",
        f"browse/lab/{H5}/",
    ]
    with httpx.Client(timeout=30) as client:
        responses = [client.get(f"{base}/{p}", headers={"Range": "bytes=0-"}) for p in paths]
    assert [r.status_code for r in responses] == [206, 206, 206, 206, 200], [r.text[:200] for r in responses]
    assert len({instance_of(r) for r in responses}) == 1


def test_map_knows_every_suffix_the_adapters_serve():
    template = (DEPLOY / "nginx" / "ome-zarr-gateway.conf.template").read_text()
    alternatives = re.search(r"\\\.\(\?:([^)]*)\)", template).group(1).split("|")
    expanded = set()
    for alternative in alternatives:  # tiff? → tif, tiff; nc4? style is not used
        expanded |= {alternative[:-2], alternative[:-1]} if alternative.endswith("f?") else {alternative}
    suffixes = {s.lstrip(".").rsplit(".", 1)[-1] for a in adapters.REGISTRY for s in a.suffixes}
    assert suffixes <= expanded, suffixes - expanded


# -- nginx's cache -----------------------------------------------------------------------


def test_repeated_chunk_is_served_by_nginx_cache(cluster):
    nginx, gateways = cluster
    target = url(nginx, f"{DATASETS[0]}/0/c/1/1")
    with httpx.Client(timeout=30) as client:
        first = client.get(target)
        assert first.status_code == 200 and first.headers["x-cache-status"] == "MISS"
        before = [chunk_requests(g) for g in gateways]
        again = client.get(target)
        head = client.head(target)
        after = [chunk_requests(g) for g in gateways]
    assert again.headers["x-cache-status"] == "HIT" and head.headers["x-cache-status"] == "HIT"
    assert again.content == first.content
    assert again.headers["etag"] == first.headers["etag"]
    assert head.headers["content-length"] == str(len(first.content))
    assert after == before  # no gateway saw the repeated requests


def test_cache_hits_do_not_stall_on_one_keep_alive_connection(cluster):
    """Debian's ``tcp_nopush on`` made nginx hold the tail of cache HITs of ~75-125 KB
    until the client's delayed ACK: >= 40 ms per answer (the kernel's minimum delayed-ACK
    time, a floor no machine load can lower), where a HIT takes ~0.2 ms. The median of
    100 HITs against 30 ms is 100x looser than the healthy figure and still below the
    stalled floor: not flaky on a slow machine, and a stall cannot slip through. (Checked:
    the shipped template without its tcp_nopush fix fails here with a 44 ms median.)
    Speed itself is measured by bench/bench_nginx.py."""
    nginx, _ = cluster
    targets = [f"{PREFIX}/lab/{NOISE}/{key}" for key in CHUNKS]
    connection = http.client.HTTPConnection("127.0.0.1", nginx.http_port, timeout=30)
    try:
        expected = {}
        for target in targets:  # MISS: into the cache
            connection.request("GET", target)
            first = connection.getresponse()
            expected[target] = first.read()
            assert first.status == 200 and len(expected[target]) > 65536  # > 1 loopback segment
        socket_ = connection.sock
        durations = []
        for index in range(100):
            target = targets[index % len(targets)]
            start = time.perf_counter()
            connection.request("GET", target)
            response = connection.getresponse()
            body = response.read()
            durations.append(time.perf_counter() - start)
            assert response.getheader("x-cache-status") == "HIT" and body == expected[target]
        assert connection.sock is socket_  # all on one keep-alive connection
    finally:
        connection.close()
    assert statistics.median(durations) < 0.030, sorted(durations)[::10]


def test_updated_cache_entry_is_never_served_stale(tmp_path):
    """The template keeps hot cache files open (open_file_cache): when an expired entry is
    refreshed with new bytes, the next HIT must read the new cache file, not the descriptor
    still open on the old one (nginx passes the cache node's inode to the open-file cache)."""
    require_tool("nginx")
    root = tmp_path / "data"
    root.mkdir()
    tiff = root / "changing.tif"
    tifffile.imwrite(tiff, np.full((64, 64), 1, np.uint16), photometric="minisblack")
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[roots]\nlab = "{root}"\n[server]\nroot_path = "{PREFIX}"\naccess_log = "off"\n'
        'cache_control_chunks = "public, max-age=1"\n[cache]\nstat_interval_seconds = 0\n'
    )
    gateway = start_gateway(config, "fresh")
    try:
        with running_nginx(tmp_path / "nginx", [gateway]) as nginx, httpx.Client(timeout=30) as client:
            target = url(nginx, "changing.tif/0/c/0/0")
            old = client.get(target)
            hit = client.get(target)
            assert hit.headers["x-cache-status"] == "HIT" and hit.content == old.content
            tifffile.imwrite(tiff, np.full((64, 64), 2, np.uint16), photometric="minisblack")
            direct = httpx.get(f"{gateway.base}/lab/changing.tif/0/c/0/0", timeout=30).content
            assert direct != old.content
            time.sleep(1.5)  # past max-age: a request now refreshes the entry (in the background:
            # that request itself may still get the old bytes, marked STALE)
            statuses = []
            for _ in range(50):
                response = client.get(target)
                statuses.append(response.headers["x-cache-status"])
                if response.content == direct:
                    break
                assert response.content == old.content  # the old version, never a mix
                time.sleep(0.1)
            again = [client.get(target) for _ in range(3)]
        assert response.content == direct, statuses
        assert all(r.headers["x-cache-status"] == "HIT" and r.content == direct for r in again)
    finally:
        gateway.process.stop()


def test_cache_honours_etag_and_cache_control(cluster):
    nginx, _ = cluster
    with httpx.Client(timeout=30) as client:
        chunk = client.get(url(nginx, f"{DATASETS[1]}/0/c/0/0"))
        metadata = client.get(url(nginx, f"{DATASETS[1]}/zarr.json"))
        page = client.get(url(nginx, f"{DATASETS[1]}/"))
        page_again = client.get(url(nginx, f"{DATASETS[1]}/"))
        conditional = client.get(
            url(nginx, f"{DATASETS[1]}/0/c/0/0"), headers={"If-None-Match": chunk.headers["etag"]}
        )
        missing = [client.get(url(nginx, f"{DATASETS[1]}/0/c/9/9")) for _ in range(2)]
    assert chunk.headers["cache-control"] == "public, max-age=86400"
    assert metadata.headers["cache-control"] == "public, max-age=60"  # short-lived
    assert conditional.status_code == 304 and conditional.headers["etag"] == chunk.headers["etag"]
    assert page.headers["cache-control"] == "no-cache" and page_again.headers["x-cache-status"] != "HIT"
    assert [r.status_code for r in missing] == [404, 404]
    assert all(r.headers["x-cache-status"] != "HIT" for r in missing)  # errors are no-store


def test_range_requests_reach_the_gateway(cluster):
    nginx, gateways = cluster
    target = url(nginx, f"{DATASETS[0]}/0/c/1/1")  # cached by the test above
    before = sum(chunk_requests(g) for g in gateways)
    with httpx.Client(timeout=30) as client:
        ranged = client.get(target, headers={"Range": "bytes=0-9"})
    assert ranged.status_code == 206 and ranged.headers["x-cache-status"] == "BYPASS"
    assert sum(chunk_requests(g) for g in gateways) == before + 1


# -- the same answers as without nginx --------------------------------------------------

CASES = [
    ("GET", {}),
    ("HEAD", {}),
    ("GET", {"Range": "bytes=0-99"}),
    ("GET", {"Range": "bytes=-10"}),
    ("GET", {"Range": "bytes=100-"}),
    ("HEAD", {"Range": "bytes=0-99"}),
    ("GET", {"Range": "bytes=999999-"}),
    ("GET", {"Range": "bytes=0-1,5-6"}),
    ("GET", {"Range": "bytes=5-2"}),
    ("GET", {"Origin": ORIGIN}),
    ("GET", {"Origin": ORIGIN, "Range": "bytes=0-3"}),
    ("GET", {"Accept-Encoding": "gzip, br"}),
]
COMPARED = (
    "content-type",
    "content-length",
    "content-range",
    "etag",
    "cache-control",
    "accept-ranges",
    "last-modified",
    "access-control-allow-origin",
    "access-control-expose-headers",
)


@pytest.mark.parametrize("key", ["0/c/0/1", "zarr.json", "0/c/7/7"])
@pytest.mark.parametrize(("method", "headers"), CASES)
def test_answers_as_without_nginx(cluster, key, method, headers):
    nginx, gateways = cluster
    name = DATASETS[2]
    direct_base = gateways[0].base
    for attempt in range(2):  # the second time, from nginx's cache where it caches
        via = raw(nginx.http, method, f"{PREFIX}/lab/{name}/{key}", headers)
        direct = raw(direct_base, method, f"/lab/{name}/{key}", headers)
        assert via[0] == direct[0], (attempt, via[0], direct[0])
        assert via[2] == direct[2], attempt
        for name_ in COMPARED:
            assert header(via[1], name_) == header(direct[1], name_), (attempt, name_)
        assert not header(via[1], "content-encoding")


def test_preflight_as_without_nginx(cluster):
    nginx, gateways = cluster
    request = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "range",
    }
    via = raw(nginx.http, "OPTIONS", f"{PREFIX}/lab/{DATASETS[2]}/0/c/0/0", request)
    direct = raw(gateways[0].base, "OPTIONS", f"/lab/{DATASETS[2]}/0/c/0/0", request)
    assert via[0] == direct[0] == 204
    for name in (
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-allow-headers",
    ):
        assert header(via[1], name) == header(direct[1], name) != []


def test_unavailable_upstream_error_is_json_with_cors(tmp_path, cluster):
    _, gateways = cluster
    dead = GatewayProcess("dead", free_port(), gateways[0].process)  # nothing listens there
    with running_nginx(tmp_path / "nginx-dead", [dead]) as lone:
        response = httpx.get(f"{lone.http}{PREFIX}/lab/{DATASETS[0]}/zarr.json", headers={"Origin": ORIGIN})
    assert response.status_code == 502
    assert response.json()["error"] == "gateway_unavailable"
    assert response.headers.get_list("access-control-allow-origin") == ["*"]


# -- sub-path, TLS, HTTP/2 ----------------------------------------------------------------


def test_pages_link_under_the_sub_path(cluster):
    nginx, _ = cluster
    with httpx.Client(timeout=30) as client:
        page = client.get(url(nginx, f"{DATASETS[3]}/"), params={"format": "json"}).json()
        folder = DATASETS[3].rsplit("/", 1)[0]
        listing = client.get(f"{nginx.http}{PREFIX}/lab/{folder}/", params={"format": "json"}).text
        roots = client.get(f"{nginx.http}{PREFIX}/", params={"format": "json"}).json()
        tls_page = httpx.get(f"{nginx.https}{PREFIX}/lab/{DATASETS[3]}/?format=json", verify=False).json()
    assert page["url"] == f"{nginx.http}{PREFIX}/lab/{DATASETS[3]}/"
    assert f"{nginx.http}{PREFIX}/lab/{DATASETS[3]}/" in listing
    assert [f["url"] for f in roots["folders"]] == [f"{nginx.http}{PREFIX}/lab/"]
    assert tls_page["url"] == f"{nginx.https}{PREFIX}/lab/{DATASETS[3]}/"  # X-Forwarded-Proto


def test_tls_server_speaks_http2(cluster):
    nginx, _ = cluster
    curl = require_tool("curl")
    done = subprocess.run(
        [
            curl,
            "-sk",
            "--http2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
            f"{nginx.https}{PREFIX}/lab/{DATASETS[4]}/0/c/0/0",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == "2 200"


def test_metrics_are_not_exposed_through_nginx(cluster):
    nginx, _ = cluster
    assert httpx.get(f"{nginx.http}{PREFIX}/metrics").status_code == 404


def test_signed_url_tokens_are_redacted_in_nginx_log(cluster):
    nginx, _ = cluster
    token = "v1.9999999999.bGFi.c2VjcmV0LXNpZ25hdHVyZQ"
    httpx.get(f"{nginx.http}{PREFIX}/s/{token}/lab/{DATASETS[0]}/zarr.json")
    # nginx logs a request after it has sent the answer: wait for the line, do not race it
    wait_for(lambda: f"{PREFIX}/s/" in nginx.access_log, "the signed request's log line", timeout=10)
    log = nginx.access_log
    assert f"{PREFIX}/s/<redacted>/lab/{DATASETS[0]}/zarr.json" in log
    assert token not in log


def test_several_workers_under_nginx_report_one_total(cluster):
    _, gateways = cluster
    g3 = gateways[2]
    before = metric_total(g3.metrics(), "gateway_requests_total", kind="health")
    results: list[int] = []

    def hit() -> None:
        results.extend(httpx.get(f"{g3.base}/health").status_code for _ in range(10))

    threads = [threading.Thread(target=hit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 40
    # each worker counts its own; /metrics (answered by either) sums every worker's file
    assert metric_total(g3.metrics(), "gateway_requests_total", kind="health") == before + 40


def test_basic_auth_example(tmp_path, cluster):
    _, gateways = cluster
    import base64
    import hashlib

    htpasswd = tmp_path / "htpasswd"
    digest = base64.b64encode(hashlib.sha1(b"s3cret").digest()).decode()
    htpasswd.write_text(f"alice:{{SHA}}{digest}\n")
    with running_nginx(
        tmp_path / "nginx-auth", gateways, OZG_AUTH_REALM="ome-zarr-gateway", OZG_HTPASSWD=str(htpasswd)
    ) as guarded:
        target = f"{guarded.http}{PREFIX}/lab/{DATASETS[5]}/0/c/0/0"
        anonymous = httpx.get(target)
        wrong = httpx.get(target, auth=("alice", "nope"))
        first = httpx.get(target, auth=("alice", "s3cret"))
        second = httpx.get(target, auth=("alice", "s3cret"))
        preflight = httpx.options(target, headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
    assert anonymous.status_code == wrong.status_code == 401
    assert "basic" in anonymous.headers["www-authenticate"].lower()
    assert first.status_code == second.status_code == 200
    assert second.headers["x-cache-status"] == "HIT"  # authenticated by nginx, cached by nginx
    assert preflight.status_code == 204  # browsers send preflights without credentials


# -- last: one instance goes away under load ---------------------------------------------


def test_terminating_one_instance_under_load_loses_no_request(cluster):
    nginx, gateways = cluster
    with httpx.Client(timeout=30) as client:
        expected = {}
        owners = {}
        for name in DATASETS:
            for key in CHUNKS:
                response = client.get(url(nginx, f"{name}/{key}"), headers={"Range": "bytes=0-"})
                expected[(name, key)] = response.content
                owners[name] = instance_of(response)
    # a single-process instance that owns datasets (g3 runs two workers)
    load_per_instance = Counter(owners.values())
    victim = max(gateways[:2], key=lambda g: load_per_instance[g.name])
    assert load_per_instance[victim.name] > 0, owners
    work = [k for _ in range(5) for k in expected]  # 320 uncached (ranged) requests
    failures: list[str] = []
    served: Counter[str] = Counter()
    done = 0
    lock = threading.Lock()
    killed = threading.Event()

    def load(part: list[tuple[str, str]]) -> None:
        nonlocal done
        with httpx.Client(timeout=60, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            for name, key in part:
                try:
                    response = client.get(url(nginx, f"{name}/{key}"), headers={"Range": "bytes=0-"})
                except httpx.HTTPError as exc:
                    failures.append(f"{name}/{key}: {exc!r}")
                    continue
                with lock:
                    done += 1
                    if response.status_code != 206 or response.content != expected[(name, key)]:
                        failures.append(f"{name}/{key}: {response.status_code} {response.text[:100]}")
                    elif killed.is_set():
                        served[instance_of(response)] += 1

    threads = [threading.Thread(target=load, args=(work[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    while done < len(work) // 4:
        threading.Event().wait(0.01)
    # SIGTERM: graceful, in-flight requests finish (uvicorn re-raises the signal when done)
    assert victim.process.stop() in (0, -15)
    killed.set()
    for thread in threads:
        thread.join()
    assert failures == []
    assert victim.name not in served  # after it stopped, the others served everything
    assert sum(served.values()) > 0
    victim_address = f"127.0.0.1:{victim.port}"
    retried = [line for line in nginx.access_log.splitlines() if f"upstream={victim_address}, " in line]
    assert retried, "no request was retried on the next instance"
    assert all(" 206 " in line for line in retried)
    with httpx.Client(timeout=30) as client:
        for name, owner in owners.items():
            now = instance_of(client.get(url(nginx, f"{name}/0/c/0/0"), headers={"Range": "bytes=0-"}))
            if owner == victim.name:
                assert now != victim.name
            else:
                assert now == owner, name  # consistent hashing: only the victim's datasets moved
