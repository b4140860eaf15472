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

# Leader failover and bring-up times (median of 5).
bench-failover:
    cargo run --release -q -- bench --failover --kills 5

# A 60 s chaos run with every fault kind, report in chaos-out/.
chaos seed="1":
    cargo run --release -q -- chaos --duration 60s --seed {{seed}} --out chaos-out

# An hour of chaos on five nodes with every fault kind (not in CI): verdict,
# figures and restart times in soak-out/.
soak duration="60m" seed="1":
    cargo run --release -q -- chaos --duration {{duration}} --seed {{seed}} --clients 8 --out soak-out

# The quorum experiment (under five minutes), report in experiment-quorum/.
experiment:
    cargo run --release -q -- experiment quorum --with-sim

# Bring up the default cluster in the background / stop it.
up:
    cargo run --release -q -- up --detach
down:
    cargo run --release -q -- down
