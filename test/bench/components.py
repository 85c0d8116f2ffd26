#!/usr/bin/env python3
"""Attribute a CPU profile's samples to the control plane's components.

usage: go tool pprof -traces bin/skiff cpu.pprof | python3 components.py [MS]

Each sample goes to the first component, in the order of RULES, that a
frame of its stack belongs to. Given MS, the CPU milliseconds per Instance
of the same run, each share is also said in milliseconds per Instance
(docs/performance.md, "The controllers").
"""
import re
import sys

RULES = [
    ("garbage collection", [r"runtime\.gcBgMarkWorker", r"runtime\.gcAssistAlloc", r"runtime\.bgsweep", r"runtime\.bgscavenge", r"runtime\.gcStart"]),
    ("workload controller", [r"skiff/controllers/workload\."]),
    ("scheduler", [r"skiff/controllers/scheduler\."]),
    ("other controllers", [r"skiff/controllers/(nodelifecycle|gc|nodeipam|metrics)\.", r"controller-runtime/pkg/leaderelection", r"client-go/tools/leaderelection"]),
    ("controllers' informers (watch decoding, handlers)", [r"client-go/tools/cache\.", r"apimachinery/pkg/watch\.\(\*StreamWatcher\)", r"controller-runtime/pkg/(cache|internal/source)"]),
    ("API writes (create, bind, status)", [r"skiff/apiserver\.newUnrecordedCreates", r"handlers\.(CreateResource|UpdateResource|PatchResource|createHandler|DeleteResource|CreateNamedResource|DeleteCollection)", r"skiff/apiserver\.\(\*bindingREST\)"]),
    ("API watches (encoding events to watchers)", [r"handlers\.serveWatch", r"handlers\.\(\*WatchServer\)", r"cacher\.\(\*cacheWatcher\)", r"cacher\.\(\*Cacher\)\.dispatchEvent", r"handlers\.\(\*watchEncoder\)"]),
    ("API reads (get, list)", [r"handlers\.(ListResource|GetResource|getResourceHandler)"]),
    ("watch cache (decoding etcd's events)", [r"etcd3\.\(\*watchChan\)", r"cacher\.\(\*watchCache\)", r"cacher\.\(\*Cacher\)\.startCaching", r"etcd3\.\(\*concurrentOrderedEventProcessing\)"]),
    ("etcd", [r"go\.etcd\.io/etcd/server", r"go\.etcd\.io/raft", r"go\.etcd\.io/bbolt"]),
    ("request filters (authentication, audit, fair queues)", [r"k8s\.io/apiserver/pkg/endpoints/filters", r"k8s\.io/apiserver/pkg/server/filters", r"skiff/apiserver\.\(\*Server\)\.applyAccess", r"audit"]),
    ("HTTP, TLS, sockets", [r"net/http\.", r"crypto/tls", r"golang\.org/x/net/http2", r"internal/poll", r"runtime\.netpoll"]),
    ("gossip", [r"hashicorp/memberlist", r"skiff/gossip\."]),
]
OTHER = "Go runtime scheduling, timers, other"
UNITS = {"s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
SAMPLE = re.compile(r"\s*([\d.]+)(s|ms|us|µs|ns)\s+(.*)")


def component(stack):
    for name, patterns in RULES:
        if any(re.search(p, frame) for frame in stack for p in patterns):
            return name
    return OTHER


def main():
    by, total = {}, 0.0
    stack, value = [], None

    def flush():
        nonlocal total
        if value is not None:
            name = component(stack)
            by[name] = by.get(name, 0.0) + value
            total += value

    for line in sys.stdin:
        if line.startswith("-----------"):
            flush()
            stack, value = [], None
            continue
        m = SAMPLE.match(line)
        if m:
            value = float(m.group(1)) * UNITS[m.group(2)]
            stack = [m.group(3).strip()]
        elif value is not None:
            stack.append(line.strip())
    flush()
    per = float(sys.argv[1]) if len(sys.argv) > 1 else None
    for name, v in sorted(by.items(), key=lambda kv: -kv[1]):
        share = v / total * 100
        extra = f"  {per * share / 100:.2f} ms per Instance" if per else ""
        print(f"{share:5.1f} %  {name}{extra}")


if __name__ == "__main__":
    main()
