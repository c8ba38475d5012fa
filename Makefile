# Esteira: the two commands are `make up` and `make test`.
.PHONY: up cluster down test test-unit schemathesis browser-tests clean bench-amqp bench-jobs bench-leads bench-celery bench-flow bench-dashboard bench-export bench-sync bench-messaging bench-email bench-cluster soak build

up:          ## install what is missing, start RabbitMQ, PostgreSQL and every service, run a demo
	@bash scripts/up.sh
cluster:     ## make up with a cluster of three RabbitMQ nodes (joined with rabbitmqctl join_cluster) and quorum queues; make down stops it
	@ESTEIRA_CLUSTER=1 bash scripts/up.sh
down:        ## stop everything `make up` started (data kept in .esteira/)
	@bash scripts/down.sh
test:        ## start servers of its own on free ports, run every test, then schemathesis against the api
	@bash scripts/test.sh
test-unit:   ## the tests that need no server (parsers, policies, workloads, handlers with a made-up context): seconds once built
	@bash scripts/test-unit.sh
schemathesis: ## schemathesis against the api alone, on servers of its own (ESTEIRA_SCHEMATHESIS_EXAMPLES, default 25)
	@bash scripts/schemathesis.sh
browser-tests: ## the dashboard in Chromium (Playwright), on servers of its own; arguments to pytest in ARGS
	@bash scripts/browser-tests.sh $(ARGS)
clean: down  ## stop, then remove .esteira/ (data and logs)
	@bash -c 'source scripts/stack.sh; pg_destroy .esteira; rm -rf .esteira .esteira-test .esteira-schemathesis .esteira-browser'
build:       ## release build of every executable (what make up runs); debug: swift build
	@swift build -c release
bench-amqp:  ## publish+consume 200,000 messages: Swift AMQP module vs rabbitmq-c from C
	@bash bench/amqp.sh
bench-leads: ## 1,000,000 leads moved by a lead migration at batch sizes 100/1000/10000 vs one plain UPDATE
	@bash bench/leads.sh
bench-jobs:  ## 200,000 noop jobs end to end with 2 processors vs the broker ceiling
	@bash bench/jobs.sh
bench-flow:  ## flow control vs a plain kind: unique, global and per-key concurrency, a rate limiter; a limit of 3 over 4 processors; a limiter's rate over a minute
	@bash bench/flow.sh
bench-dashboard: ## every dashboard page with 1,000,000 jobs in the table: p50/p95 against the api's JSON listing and a 100 ms budget
	@bash bench/dashboard.sh
bench-export: ## 100,000 leads over 365 days exported to a PostgREST stand-in at batch sizes 100 and 1000 vs one INSERT ... SELECT
	@bash bench/export.sh
bench-sync:  ## 200 stores synced from Shopify and Klaviyo stand-ins (20 ms a page) by 3 syncers vs the cap's bound; cache-hit latency
	@bash bench/sync.sh
bench-messaging: ## a 100,000-contact campaign to a provider stand-in vs noop jobs/s; change -> feed event latency with 1,000 feed clients
	@bash bench/messaging.sh
bench-email: ## 100 stores x 500 emails in Dovecot answered end to end (IMAP, classify, Shopify stand-in, SMTP sink) vs noop jobs/s; goal 500,000/h
	@bash bench/email.sh
bench-cluster: ## bench-jobs' workload on one RabbitMQ node with classic queues vs three nodes with quorum queues, and during kill -9 of a node
	@bash bench/cluster.sh
bench-celery: ## 50,000 noop jobs: Esteira vs Celery 5 with a PostgreSQL result backend vs Celery without, same broker
	@bash bench/celery.sh
soak:        ## 10 minutes of mixed load at half capacity with a random fault every minute (not in make test)
	@bash bench/soak.sh
