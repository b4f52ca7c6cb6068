# transport/: the JetStream log (transport/log.h) and its in-memory fake.
# Included from tests/CMakeLists.txt after the litejet_* helpers.
litejet_unit(test_memory_log)
# transport/nats_conn.h: the nkey seed -> public key derivation.
litejet_unit(test_nkey)
litejet_integration(test_nats_log)
# transport/lease.h: the KV leases and heartbeats and their in-memory fake.
litejet_unit(test_lease_memory)
litejet_integration(test_lease_nats)
# cli/status.cc, cli/log.cc: `litejet status` and `litejet log` run as
# processes against a real server (also label "cli": ctest -L cli).
litejet_integration(test_cli_status)
add_dependencies(test_cli_status litejet_cli)
litejet_integration(test_cli_log)
add_dependencies(test_cli_log litejet_cli)
set_property(TEST test_cli_status test_cli_log APPEND PROPERTY LABELS cli)
# snapshot/: the snapshot codec, stores (memory; JetStream), retention and restore.
litejet_unit(test_snapshot)
litejet_integration(test_snapshot_nats)
