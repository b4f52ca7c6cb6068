# End-to-end tests: a primary and replicas as separate OS processes (Python
# workers and the sqlite3 shell) over a real nats-server. Included from
# tests/CMakeLists.txt after litejet_script and LITEJET_HOST_ENV; each script
# prints "ok"/"FAIL" lines and "N passed, M failed", exits non-zero on failure.
set(LITEJET_E2E_TESTS
    10k_identical
    reader_keeps_snapshot
    invariant
    50mb_txn
    replica_resume
    replica_before_primary
    two_processes_one_replica
    shell_clients
    async_outage
    primary_killed
    position_while_growing
    auth
    backlog_handoff
    sync_committer_killed
    batch_cut
    plain_shell_backlog
    sync_committer_killed_after_ack
    sync_outage_lost
    sync_outage_landed
    sync_late_ack
    sync_agent_takeover
    power_loss
    blocker_after_borrowed_restart
    agent_restart_no_busy_snapshot
    heartbeats
    failover
    divergence
    static_primary_lease
    forward
    cli_replicate
    cli_log
    snapshot_restore
    secure
    edge
    metrics
    repl_snapshot
    bootstrap
    retention
    replica_wal_bounded)

foreach(t IN LISTS LITEJET_E2E_TESTS)
  if(PYTHON3)
    litejet_script(e2e_${t} ${PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_${t}.py)
    # Each finishes in well under a minute; the scripts' own watchdog is 150 s.
    set_tests_properties(e2e_${t} PROPERTIES TIMEOUT 180)
  else()
    litejet_script(e2e_${t} sh -c "echo 'e2e_${t}: /usr/bin/python3 not found: install python3' >&2 && false")
  endif()
endforeach()

set_property(TEST e2e_cli_replicate e2e_cli_log e2e_snapshot_restore APPEND PROPERTY LABELS cli)

# Kill-torture (issue 8): SIGKILL at random instants, seeded and printed.
# 40 rounds here (about a minute); sanitized builds run 10.
if(PYTHON3)
  litejet_script(e2e_torture ${PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_torture.py)
  set_tests_properties(e2e_torture PROPERTIES TIMEOUT 900)
  if(LITEJET_SANITIZE)
    set_property(TEST e2e_torture APPEND PROPERTY ENVIRONMENT "LITEJET_TORTURE_ROUNDS=10" "LITEJET_TORTURE_MAX_KILL_S=2.5")
  endif()
endif()

# Failover chaos (issue 9): rounds of SIGKILL, SIGSTOP and repl_step_down()
# at random instants among three role=auto nodes under a write load, seeded
# and printed; then one history. 50 rounds here (about two minutes);
# sanitized builds run 20.
if(PYTHON3)
  litejet_script(e2e_failover_chaos ${PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_failover_chaos.py)
  set_tests_properties(e2e_failover_chaos PROPERTIES TIMEOUT 480)
  if(LITEJET_SANITIZE)
    set_property(TEST e2e_failover_chaos APPEND PROPERTY ENVIRONMENT "LITEJET_CHAOS_ROUNDS=20")
  endif()
else()
  litejet_script(e2e_failover_chaos sh -c "echo 'e2e_failover_chaos: /usr/bin/python3 not found' >&2 && false")
endif()

# Every host ends without closing its replicated database, 100 times each per
# run (server up, down, stalled mid-connect); then every commit must be in the
# log. The C host is a tiny app on liblitejet.a.
add_executable(exit_app hosts/exit_app.c)
target_link_libraries(exit_app PRIVATE litejet_static)
set_target_properties(exit_app PROPERTIES LINKER_LANGUAGE CXX)
if(PYTHON3)
  litejet_script(e2e_exit_without_close ${PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/e2e/test_exit_without_close.py)
  set_property(TEST e2e_exit_without_close APPEND PROPERTY ENVIRONMENT "LITEJET_EXIT_APP=$<TARGET_FILE:exit_app>"
               "TCLSH=${TCLSH}")
  # About a minute in the normal build; the script's own watchdog is 240 s.
  set_tests_properties(e2e_exit_without_close PROPERTIES TIMEOUT 300)
else()
  litejet_script(e2e_exit_without_close sh -c "echo 'e2e_exit_without_close: /usr/bin/python3 not found' >&2 && false")
endif()
