# Test services and images for connectd's integration and fault suites.
#
# Works included from the top-level Makefile (`include test/services.mk`) and
# standalone (`make -f test/services.mk services images`). Targets:
#   services        install what is missing (apt-get; pip for duckdb; promtool taken out of
#                   Debian's prometheus package), then start on 127.0.0.1:
#                   Kafka (KRaft, one node, :9192), PostgreSQL 15 (:5432),
#                   Redis 7 (:6379, appendonly), and dockerd. Idempotent.
#   services-stop   stop them (data kept); services-status shows them
#   clean-services  stop them and remove their data dirs
#   images          build connectd-{base,kafka,postgres,redis} images locally,
#                   cached by a content hash of their inputs
#   kafka-cluster   three-node KRaft cluster on :19092-19094 (on request only)
#   kafka-cluster-stop
# Data, logs and PIDs live in $(CONNECTD_RUN); jars and image tags in $(CONNECTD_CACHE).

CONNECTD_TEST_DIR := $(patsubst %/,%,$(dir $(lastword $(MAKEFILE_LIST))))
_connectd_services_standalone := $(filter 1,$(words $(MAKEFILE_LIST)))
_connectd_saved_goal := $(.DEFAULT_GOAL)
CONNECTD_SCRIPTS := $(CONNECTD_TEST_DIR)/scripts

export CONNECTD_CACHE ?= $(HOME)/.cache/connectd
export CONNECTD_RUN ?= /var/tmp/connectd
export KAFKA_VERSION ?= 4.1.1
export KAFKA_PORT ?= 9192
export KAFKA_CLUSTER_BASE_PORT ?= 19092
export PG_PORT ?= 5432
export REDIS_PORT ?= 6379
# The duckdb Python package: the files sink's outside witness (sink/files) reads its output with it.
DUCKDB_VERSION ?= 2.0.1

# Where the tests look for the services (test/testenv); the defaults there
# match these, so `make services && go test ./...` needs no sourcing.
export KAFKA_BROKERS ?= 127.0.0.1:$(KAFKA_PORT)
export KAFKA_CLUSTER_BROKERS ?= 127.0.0.1:$(KAFKA_CLUSTER_BASE_PORT),127.0.0.1:$(shell expr $(KAFKA_CLUSTER_BASE_PORT) + 1),127.0.0.1:$(shell expr $(KAFKA_CLUSTER_BASE_PORT) + 2)
export PG_DSN ?= postgres://connectd:connectd@127.0.0.1:$(PG_PORT)/postgres?sslmode=disable
export REDIS_ADDR ?= 127.0.0.1:$(REDIS_PORT)
# testcontainers-go on this machine: /.dockerenv exists, so without the
# override it dials the VM gateway instead of loopback; the reaper image
# cannot be pulled, so tests clean up with t.Cleanup instead.
export TESTCONTAINERS_HOST_OVERRIDE ?= 127.0.0.1
export TESTCONTAINERS_RYUK_DISABLED ?= true

.PHONY: services services-stop services-status clean-services images kafka-jars kafka-cluster kafka-cluster-stop services-help

services:
	@$(CONNECTD_SCRIPTS)/install.sh services
	@python3 -c 'import duckdb, sys; sys.exit(duckdb.__version__ != "$(DUCKDB_VERSION)")' 2>/dev/null || \
		python3 -m pip install --quiet --root-user-action=ignore duckdb==$(DUCKDB_VERSION)
	@$(CONNECTD_SCRIPTS)/promtool.sh
	@$(CONNECTD_SCRIPTS)/kafka-jars.sh
	@$(CONNECTD_SCRIPTS)/kafka.sh start single
	@$(CONNECTD_SCRIPTS)/postgres.sh start
	@$(CONNECTD_SCRIPTS)/redis.sh start
	@$(CONNECTD_SCRIPTS)/dockerd.sh start

services-stop:
	@$(CONNECTD_SCRIPTS)/kafka.sh stop cluster
	@$(CONNECTD_SCRIPTS)/kafka.sh stop single
	@$(CONNECTD_SCRIPTS)/postgres.sh stop
	@$(CONNECTD_SCRIPTS)/redis.sh stop
	@$(CONNECTD_SCRIPTS)/dockerd.sh stop

services-status:
	@$(CONNECTD_SCRIPTS)/kafka.sh status single
	@$(CONNECTD_SCRIPTS)/kafka.sh status cluster
	@$(CONNECTD_SCRIPTS)/postgres.sh status
	@$(CONNECTD_SCRIPTS)/redis.sh status
	@$(CONNECTD_SCRIPTS)/dockerd.sh status

# Removes service data, not the jar cache or the Docker images (see `images`).
clean-services:
	@$(CONNECTD_SCRIPTS)/kafka.sh clean cluster
	@$(CONNECTD_SCRIPTS)/kafka.sh clean single
	@$(CONNECTD_SCRIPTS)/postgres.sh clean
	@$(CONNECTD_SCRIPTS)/redis.sh clean
	@$(CONNECTD_SCRIPTS)/dockerd.sh stop

kafka-jars:
	@$(CONNECTD_SCRIPTS)/kafka-jars.sh

images:
	@$(CONNECTD_SCRIPTS)/install.sh images
	@$(CONNECTD_SCRIPTS)/dockerd.sh start
	@$(CONNECTD_SCRIPTS)/kafka-jars.sh
	@$(CONNECTD_SCRIPTS)/images.sh

kafka-cluster:
	@$(CONNECTD_SCRIPTS)/install.sh services
	@$(CONNECTD_SCRIPTS)/kafka.sh start cluster

kafka-cluster-stop:
	@$(CONNECTD_SCRIPTS)/kafka.sh stop cluster

services-help:
	@sed -n '1,15s/^# \{0,1\}//p' $(CONNECTD_TEST_DIR)/services.mk

# Included, this file must not change the includer's default goal.
ifneq ($(_connectd_services_standalone),)
.DEFAULT_GOAL := services-help
else
.DEFAULT_GOAL := $(_connectd_saved_goal)
endif
