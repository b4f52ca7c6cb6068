# Host tests: litejet through the hosts users run it in (sqlite3 shell, Python,
# Tcl, a C app on liblitejet.a) and the pass-through VFS proof. Included from
# tests/CMakeLists.txt after the litejet_* helpers and LITEJET_HOST_ENV.

# Same workload through "unix" and "litejet": byte-identical files.
litejet_integration(test_passthrough)

# A missing host fails its test with the reason instead of vanishing from the
# run: these hosts are what the extension promises to work in.
function(litejet_missing_host name why)
  litejet_script(${name} env -u LD_PRELOAD sh -c "echo '${name}: ${why}' >&2 && false")
endfunction()

# bash itself crashes under a preloaded TSan runtime: start it without
# LD_PRELOAD; the script passes the runtime on to the sqlite3 shell it runs.
set(host_preload "")
foreach(var IN LISTS LITEJET_HOST_ENV)
  if(var MATCHES "^LD_PRELOAD=(.*)$")
    set(host_preload "${CMAKE_MATCH_1}")
  endif()
endforeach()
litejet_script(host_shell env -u LD_PRELOAD "LITEJET_HOST_PRELOAD=${host_preload}" bash
               ${CMAKE_CURRENT_SOURCE_DIR}/hosts/test_shell.sh)

if(PYTHON3)
  litejet_script(host_python ${PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/hosts/test_python.py)
else()
  litejet_missing_host(host_python "/usr/bin/python3 not found: install python3")
endif()

# The Tcl package check happens in the script (package require sqlite3).
if(TCLSH)
  litejet_script(host_tcl ${TCLSH} ${CMAKE_CURRENT_SOURCE_DIR}/hosts/test_tcl.tcl)
else()
  litejet_missing_host(host_tcl "tclsh not found: install tcl8.6 and libsqlite3-tcl")
endif()

# C, not C++: liblitejet.a needs the C++ runtime, so link as C++.
add_executable(c_app hosts/c_app.c)
target_link_libraries(c_app PRIVATE litejet_static)
set_target_properties(c_app PROPERTIES LINKER_LANGUAGE CXX)
litejet_script(host_c_app $<TARGET_FILE:c_app>)

# Hosts in other languages (issue 11), each driven by a Python script that
# runs the host's programs beside Python workers over a real nats-server. A
# host whose runtime is missing fails its test with the reason (the scripts
# check it; scripts/lib.sh installs them). Node's better-sqlite3 is built by
# scripts/node-host into a cache outside the build (scripts/test starts that
# early, in the background); host_node waits for it, so it runs last.
# PHP loads its extensions with RTLD_DEEPBIND, which the ASan runtime refuses
# (php exits before it runs anything), and an ASan-built litejet.so needs that
# runtime in the process: host_php runs in the normal build only.
set(other_hosts node go ruby php)
if(LITEJET_SANITIZE MATCHES "address")
  list(REMOVE_ITEM other_hosts php)
endif()
if(PYTHON3)
  foreach(host IN LISTS other_hosts)
    litejet_script(host_${host} ${PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/hosts/test_${host}.py)
    set_tests_properties(host_${host} PROPERTIES TIMEOUT 400)
    set_property(TEST host_${host} APPEND PROPERTY LABELS hosts)
  endforeach()
  set_tests_properties(host_node PROPERTIES TIMEOUT 1000 COST -1000)
else()
  foreach(host IN LISTS other_hosts)
    litejet_missing_host(host_${host} "/usr/bin/python3 not found: install python3")
  endforeach()
endif()

# KNOWN GAP, disabled until the engine handles it (see test_go.py known_gap):
# a database configured by LITEJET_NATS_URL (no nats URI parameter) and opened
# before litejet was loaded is silently not replicated.
if(PYTHON3)
  litejet_script(host_go_env_gap ${PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/hosts/test_go.py --known-gap)
  set_tests_properties(host_go_env_gap PROPERTIES LABELS hosts)
endif()
