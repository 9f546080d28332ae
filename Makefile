# users: a CQRS user service. `make run` brings it up; `make test` runs every test.
SHELL := /bin/bash
export PATH := $(HOME)/.cargo/bin:$(PATH)

.PHONY: help lint deploy-check proto-check test-deps proto-generate build docker-build run test test-unit test-integration test-faults bench broker broker-stop postgres

# Images: `make docker-build IMAGE_REPO=registry.example.com/users IMAGE_TAG=0.1.1`, then push
# them and set the same reference in the overlay's `images:` (README, "Deploying").
IMAGE_REPO ?= users
IMAGE_TAG ?= dev

help:
	@echo "make run               start Postgres (if down), the broker and both services"
	@echo "make test              every test: unit, integration, then the fault suite (starts what they need)"
	@echo "make test-integration  integration tests only (real Postgres and broker)"
	@echo "make test-faults       the fault suite: real binaries, broker and Postgres under faults"
	@echo "make lint              rustfmt and clippy, warnings as errors"
	@echo "make proto-check       buf lint, format and breaking check of the protos (installs buf)"
	@echo "make deploy-check      offline checks of k8s/, docker-compose.yml, Envoy, Prometheus, Dockerfile"
	@echo "make proto-generate    regenerate the Rust code of shared-proto"
	@echo "make build             release binaries; make docker-build for images"
	@echo "make bench             every figure beside its baseline (pgbench, a bare server, raw argon2id)"
	@echo "make broker            install (once) and start tansu on 127.0.0.1:9092"

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

# Separate from lint: it needs Node.js (npm) rather than cargo, and takes a second.
proto-check:
	scripts/proto-check.sh

deploy-check:
	scripts/deploy-check.sh

# A Python with the CloudEvents SDK in .tools/test-venv, for the test that reads the events with it.
test-deps:
	scripts/test-deps.sh

proto-generate:
	touch shared-proto/build.rs
	cargo build -p shared-proto

build:
	cargo build --release --workspace --bins

docker-build:
	DOCKER_BUILDKIT=1 docker build --target command-service -t $(IMAGE_REPO)/command-service:$(IMAGE_TAG) .
	DOCKER_BUILDKIT=1 docker build --target query-service -t $(IMAGE_REPO)/query-service:$(IMAGE_TAG) .

run:
	scripts/run.sh

postgres:
	scripts/postgres.sh

broker: postgres
	scripts/broker.sh start

broker-stop:
	scripts/broker.sh stop

test: broker test-deps
	cargo test --workspace
	$(MAKE) --no-print-directory test-faults

test-unit:
	cargo test --workspace --lib --bins

test-integration: broker test-deps
	cargo test --workspace --test '*'

# Drives the debug binaries of both services (built here, found beside the suite's own) and
# fails when any scenario loses an acknowledged write or fails a check.
test-faults: broker
	cargo build --bins -p command-service -p query-service
	cargo run -p fault-suite

# The services under test run from their release binaries, pinned apart from the load.
bench: broker
	cargo build --release -p command-service -p query-service -p bench --bins
	target/release/bench
