# Conveniences on top of the two plain cargo commands in the README.
# (`just` is not on a fresh machine: `cargo install just`.)

# The test suite, exactly as CI runs it.
test:
    cargo test --release

# The explainer's worked examples.
demo:
    cargo run --release -q -- demo three-users
    cargo run --release -q -- demo late-joiner

# Many more simulated seeds than CI runs: single decree, whole clusters, the
# swarm (leader crashes with quick restarts while others pause), the scenarios.
sim-long seeds="20000":
    cargo run --release -q -- sim --acceptors 5 --proposers 3 --seeds {{seeds}}
    cargo run --release -q -- sim --acceptors 3 --proposers 3 --seeds {{seeds}}
    for n in 3 4 5 6 7; do cargo run --release -q -- sim --nodes $n --clients 4 --ops 40 --seeds {{seeds}} --seed $((n * 1000000)); done
    for n in 3 4 5 6 7; do cargo run --release -q -- sim --nodes $n --clients 4 --ops 40 --faults swarm,loss,dup,delay,partition --seeds $(({{seeds}} / 5)) --seed $((n * 1000000 + 500000)); done
    for s in $(cargo run --release -q -- sim --scenarios | cut -d' ' -f1); do cargo run --release -q -- sim --scenario $s; done
    for n in 1 2 3 4 5 6 7; do cargo run --release -q -- sim --nodes $n --clients 3 --ops 30 --faults all,membership --alpha 4 --seeds $(({{seeds}} / 10)) --seed $((n * 1000000 + 800000)); done
    for n in 3 5; do cargo run --release -q -- sim --nodes $n --clients 4 --ops 60 --snapshot-every 10 --faults swarm,loss,dup,delay,partition --seeds $(({{seeds}} / 5)) --seed $((n * 1000000 + 700000)); done

# Lint as CI expects before a commit.
lint:
    cargo fmt --all -- --check
    cargo clippy --all-targets -- -D warnings

# synod against a 3-node etcd over etcd's gRPC API, the same workload, alternating:
# 1, 16 and 64 clients of writes, then a 90%-read mix (needs `apt-get install etcd-server`).
bench-etcd reps="3":
    cargo run --release -q -- bench --against etcd --clients 1,16,64 --duration 10s --reps {{reps}}
    cargo run --release -q -- bench --against etcd --clients 16 --reads 0.9 --duration 10s --reps {{reps}}

# ... and against one redis-server with appendfsync always (`apt-get install redis-server`).
bench-redis reps="3":
    cargo run --release -q -- bench --against redis --clients 1,16 --duration 10s --reps {{reps}}

# Each process's crossings per put (perf stat, as root: `apt-get install linux-perf`),
# 16 clients on a fresh three-node cluster, with each fast path of issue 25 switched
# off in turn and then all on; alternating, `reps` times.
crossings reps="3":
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --release -q
    synod="$PWD/target/release/synod"
    for r in $(seq {{reps}}); do
        for cfg in "SYNOD_LOG_THREAD=1 SYNOD_FULL_BATCHES=0" "SYNOD_LOG_THREAD=1" "SYNOD_FULL_BATCHES=0" ""; do
            dir=$(mktemp -d); cd "$dir"
            env $cfg "$synod" up "$OLDPWD/clusters/three.ron" --detach > /dev/null
            echo "== ${cfg:-all on} (repetition $r)"
            "$synod" bench --clients 16 --duration 10s --crossings | grep -v "^$"
            "$synod" down --wipe > /dev/null; cd "$OLDPWD"; rm -rf "$dir"
        done
    done

# Leader failover and bring-up times (median of 5).
bench-failover:
    cargo run --release -q -- bench --failover --kills 5

# A 60 s chaos run with every fault kind, report in chaos-out/.
chaos seed="1":
    cargo run --release -q -- chaos --duration 60s --seed {{seed}} --out chaos-out

# An hour of chaos on five nodes with every fault kind (not in CI): verdict,
# figures and restart times in soak-out/.
# Issue 22 #4: a node paused 30 s under 16 clients, snapshots every 10 slots,
# back at the leader's applied slot within 5 s, ten times (about 7 minutes).
catchup-soak:
    cargo test --release --test snapshots catch_up_by_snapshot_always_ends_under_load -- --ignored --nocapture

soak duration="60m" seed="1":
    cargo run --release -q -- chaos --duration {{duration}} --seed {{seed}} --clients 8 --out soak-out

# Issue 23: how long a membership change takes to be chosen, and what a client
# writing in a loop sees while the leader is removed (docs/cluster.md).
member-times:
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --release -q
    synod="$PWD/target/release/synod"
    dir=$(mktemp -d)
    cd "$dir"
    trap '"$synod" down >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
    "$synod" up --detach >/dev/null
    for r in 1 2 3; do
        for change in "remove 5" "add 5" "promote 5"; do
            "$synod" member $change 2>&1 | grep -o "chosen in [0-9.]* ms"
            for i in $(seq 1 40); do "$synod" put k$i v; done
        done
    done
    SYNOD="$synod" python3 - <<'PY'
    import json, os, subprocess, threading, time
    S = os.environ["SYNOD"]
    st = json.loads(subprocess.run([S, "status", "--json"], capture_output=True, text=True).stdout)
    leader = next(n["id"] for n in st["nodes"] if n.get("role") == "leader")
    threading.Timer(0.5, lambda: subprocess.run([S, "member", "remove", str(leader)])).start()
    lat, fails = [], 0
    for i in range(200):
        t = time.time()
        fails += subprocess.run([S, "put", f"h{i}", "v"], capture_output=True).returncode != 0
        lat.append((time.time() - t) * 1000)
    lat.sort()
    print(f"leader {leader} removed: 200 puts, {fails} failed, median {lat[100]:.1f} ms, slowest {lat[-1]:.1f} ms")
    PY

# Membership with state: add-and-promote time with ~100,000 keys of 100
# bytes loaded (three times), then write availability while `member replace`
# swaps a voter under 4 clients, beside the same load without it.
member-state:
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --release -q
    synod="$PWD/target/release/synod"
    three="$PWD/clusters/three.ron"
    dir=$(mktemp -d)
    cd "$dir"
    trap '"$synod" down >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
    "$synod" up "$three" --detach >/dev/null
    port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
    echo "load: 16 clients put to 100,000 keys of 100 bytes for 40 s"
    "$synod" bench --clients 16 --keys 100000 --duration 40s --warmup 0 | tail -1
    "$synod" status | head -2
    for r in 1 2 3; do
        "$synod" member add "127.0.0.1:$(port)" --promote --timeout 60s 2>&1 | grep -E "in sync|promoted"
        "$synod" member remove "$((3 + r))" 2>&1 | tail -1
    done
    echo "4 clients for 12 s, no change:"
    "$synod" bench --clients 4 --keys 100000 --duration 12s --warmup 0 | tail -1
    echo "4 clients for 12 s, member replace 3 at 3 s:"
    ( sleep 3; "$synod" member replace 3 "127.0.0.1:$(port)" --timeout 60s 2>&1 | tail -1 ) &
    "$synod" bench --clients 4 --keys 100000 --duration 12s --warmup 0 | tail -1
    wait

# The quorum experiment (under five minutes), report in experiment-quorum/.
experiment:
    cargo run --release -q -- experiment quorum --with-sim

# Bring up the default cluster in the background / stop it.
up:
    cargo run --release -q -- up --detach
down:
    cargo run --release -q -- down

# What watching costs: `bench --clients 16` on a fresh three-node cluster,
# alternating with and without `synod web` plus headless Chromium showing the
# page (needs `apt-get install chromium`): throughput, and the browser's CPU
# seconds and memory (PSS of all its processes) at the end of each run.
web-cost reps="3" duration="20s":
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --release -q
    synod="$PWD/target/release/synod"
    dir=$(mktemp -d); cd "$dir"
    trap '"$synod" down >/dev/null 2>&1 || true; kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
    # CPU seconds and PSS (MB) of a process and everything below it.
    cat > tree.py <<'PY'
    import os, sys
    kids, cpu = {}, {}
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            s = open(f"/proc/{p}/stat").read()
        except OSError:
            continue
        f = s[s.rfind(")") + 2:].split()
        kids.setdefault(int(f[1]), []).append(int(p))
        cpu[int(p)] = (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    todo, total_cpu, pss = [int(sys.argv[1])], 0.0, 0
    while todo:
        p = todo.pop()
        todo += kids.get(p, [])
        total_cpu += cpu.get(p, 0.0)
        try:
            pss += sum(int(l.split()[1]) for l in open(f"/proc/{p}/smaps_rollup") if l.startswith("Pss:"))
        except OSError:
            pass
    print(f"{total_cpu:.1f} {pss // 1024}")
    PY
    "$synod" up "{{justfile_directory()}}/clusters/three.ron" --detach >/dev/null
    for rep in $(seq {{reps}}); do
        for with in no yes; do
            if [ $with = yes ]; then
                port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
                "$synod" web --addr 127.0.0.1:$port > web.out & web=$!
                sleep 1
                chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
                    --disable-background-networking --disable-component-update --disable-sync \
                    --disable-breakpad --disable-crash-reporter --no-first-run \
                    --user-data-dir="$dir/profile" --window-size=1280,1100 \
                    "$(sed -n 's/^synod web: //p' web.out)" >/dev/null 2>&1 & browser=$!
                sleep 3
                read cpu0 _ < <(python3 tree.py $browser)
            fi
            ops=$("$synod" bench --clients 16 --duration {{duration}} --json | python3 -c 'import json,sys; print(round(json.load(sys.stdin)["rows"][0]["ops_per_s"]))')
            if [ $with = yes ]; then
                read cpu1 pss < <(python3 tree.py $browser)
                echo "rep $rep  page open: $ops ops/s  (browser: $(python3 -c "print(round($cpu1 - $cpu0, 1))") CPU s, PSS $pss MB)"
                kill $browser $web; wait $browser $web 2>/dev/null || true
            else
                echo "rep $rep  no page:   $ops ops/s"
            fi
        done
    done

# Every rule `--break` accepts, caught or not: on real processes (`chaos`,
# five nodes, 10 seeds of 40 s each) and in the simulator (the first of 2,000
# seeds that catches it, five nodes, every fault kind). Prints one Markdown
# row per rule (about 75 minutes).
break-rates seeds="10" secs="40":
    #!/usr/bin/env bash
    set -uo pipefail
    cargo build --release -q
    synod="$PWD/target/release/synod"
    echo "| rule | real: caught of {{seeds}} ({{secs}} s each) | first violation on real processes | simulator: first violating seed of 2,000 |"
    echo "|---|---|---|---|"
    for rule in persist promise p2c round members confirm fresh chunks prevote intersection; do
        caught=0; first=""
        for seed in $(seq {{seeds}}); do
            dir=$(mktemp -d)
            out=$(cd "$dir" && "$synod" chaos --break $rule --duration {{secs}}s --seed $seed 2>&1)
            code=$?
            (cd "$dir" && "$synod" down --wipe >/dev/null 2>&1)
            rm -rf "$dir"
            if [ $code = 1 ]; then
                caught=$((caught + 1))
                [ -z "$first" ] && first=$(printf '%s\n' "$out" | sed -n 's/^error: //p' | cut -c1-90)
            fi
        done
        sim=$("$synod" sim --seeds 2000 --break $rule --faults all 2>/dev/null | sed -n 's/^seed \([0-9]*\): .*/\1/p' | head -1)
        echo "| \`$rule\` | $caught of {{seeds}} | ${first:--} | ${sim:-none} |"
    done

# The same bench, an older commit against this checkout, alternating, in one
# sitting: `reps` repetitions of bring-up, 1 and 16 clients (3-node cluster)
# and failover (5 leader kills), one JSON line each, then the medians, their
# ranges and the ratios (the table in docs/security.md).
bench-ab before reps="6":
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --release -q
    wt=$(mktemp -d); git worktree add -q --detach "$wt" {{before}}
    (cd "$wt" && CARGO_TARGET_DIR="$PWD/../target-bench-ab" cargo build --release -q)
    old="$wt/../target-bench-ab/release/synod"; new="$PWD/target/release/synod"
    lines=$(mktemp)
    for rep in $(seq {{reps}}); do
        for bin in "$old" "$new"; do
            which=$([ "$bin" = "$old" ] && echo before || echo after)
            d=$(mktemp -d)
            (cd "$d" && up=$("$bin" up "$OLDPWD/clusters/three.ron" --detach | grep -o 'up in [0-9.]* s') \
              && b=$("$bin" bench --clients 1,16 --duration 5s --warmup 1s --json) \
              && echo "{\"which\":\"$which\",\"rep\":$rep,\"up\":\"$up\",\"bench\":$b}" | tee -a "$lines"; "$bin" down --wipe >/dev/null)
            rm -rf "$d"; d=$(mktemp -d)
            (cd "$d" && f=$("$bin" bench --failover --kills 5 --json) \
              && echo "{\"which\":\"$which\",\"rep\":$rep,\"failover\":$f}" | tee -a "$lines")
            rm -rf "$d"
        done
    done
    git worktree remove --force "$wt"
    python3 - "$lines" <<'PY'
    import json, statistics as st, sys
    got = {"before": {}, "after": {}}
    def add(which, key, x):
        got[which].setdefault(key, []).append(x)
    for line in open(sys.argv[1]):
        d = json.loads(line)
        if "bench" in d:
            add(d["which"], "bring-up, 3 nodes (s)", float(d["up"].split()[2]))
            for r in d["bench"]["rows"]:
                n = r["clients"]
                add(d["which"], f"{n} client(s) (ops/s)", r["ops_per_s"])
                add(d["which"], f"{n} client(s) p99 (ms)", r["p99_ms"])
                add(d["which"], f"{n} client(s) CPU s / 1,000 ops", r["cpu_s_per_kop"])
        else:
            add(d["which"], "failover (s)", st.median(d["failover"]["failover_s"]))
            add(d["which"], "bring-up, 5 nodes (s)", st.median(d["failover"]["bringup_s"]))
    for key, b in got["before"].items():
        a = got["after"].get(key, [])
        if a:
            print(f"{key:34} before {st.median(b):10.4f} [{min(b):.4f}-{max(b):.4f}]  "
                  f"after {st.median(a):10.4f} [{min(a):.4f}-{max(a):.4f}]  "
                  f"{st.median(a) / st.median(b):.2f}x")
    PY
